# syntax=docker/dockerfile:1
# foundry-auth: docker build -t foundry-auth:0.1.0 .
# Runs as a numeric non-root user, with a read-only root filesystem (only /tmp, an emptyDir in the
# manifests, is writable), production dependencies only.

# 1. Build: compile TypeScript and pack the package exactly as it is published.
FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json .npmrc tsconfig.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY src ./src
RUN npm run build && npm pack --ignore-scripts --pack-destination /pack && mv /pack/foundry-auth-*.tgz /pack/foundry-auth.tgz

# 2. Production install: the packed tarball into an empty directory, production dependencies only,
#    at the versions of the lock file.
FROM node:24-bookworm-slim AS install
WORKDIR /opt
COPY --from=build /pack/foundry-auth.tgz /tmp/foundry-auth.tgz
COPY package-lock.json /tmp/package-lock.json
RUN tar -xzf /tmp/foundry-auth.tgz && mv package foundry-auth && cp /tmp/package-lock.json foundry-auth/ \
 && cd foundry-auth && npm ci --omit=dev --ignore-scripts --no-audit --no-fund && rm package-lock.json

# 3. Runtime: Node 24 slim without npm, the installed package, nothing else.
FROM node:24-bookworm-slim AS runtime
RUN rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack
COPY --from=install --chown=0:0 /opt/foundry-auth /opt/foundry-auth
ENV NODE_ENV=production
# Numeric, so runAsNonRoot can verify it without /etc/passwd; the manifests run the same IDs.
USER 10001:10001
WORKDIR /tmp
EXPOSE 8080 9090
# Node is PID 1: `serve` installs SIGTERM/SIGINT handlers (PID 1 gets no default ones), drains for
# --shutdown-grace and exits 0. It starts no child processes in a container, so no init is needed.
ENTRYPOINT ["node", "/opt/foundry-auth/dist/cli.js"]
CMD ["serve"]
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="foundry-auth" \
      org.opencontainers.image.description="Microsoft Entra ID authentication and Azure RBAC authorization in front of Foundry Local and any OpenAI-compatible server" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="docker.io/library/node:24-bookworm-slim"
