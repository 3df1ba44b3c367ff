import { spawn } from 'node:child_process';
import { z } from 'zod';
import type { Clock } from '../ops/clock.js';
import { checkTokenShape, IdentityError, type AccessToken, type TokenSource } from './token.js';

const MAX_OUTPUT_BYTES = 1024 * 1024;

/** `az account get-access-token -o json`: `expires_on` (epoch seconds, az >= 2.54) or the older local-time `expiresOn`. */
const cliTokenSchema = z.object({
  accessToken: z.string().min(1),
  expires_on: z.union([z.number(), z.string()]).optional(),
  expiresOn: z.string().optional(),
});

/**
 * The signed-in Azure CLI user, for local runs: spawns `az account get-access-token --resource {arm} -o json`
 * directly (no shell), the way the Azure SDK's AzureCliCredential does.
 */
export function azureCliSource(opts: {
  azPath: string;
  resource: string;
  timeoutMs: number;
  clock: Clock;
  env: Readonly<Record<string, string | undefined>>;
  /** `--tenant`: a token from this tenant rather than the CLI's current subscription's. */
  tenant?: string;
  /** Overrides the default description and fix (callers other than the sidecar). */
  description?: string;
  fix?: string;
}): TokenSource {
  const description = opts.description ?? 'Azure CLI (az account get-access-token)';
  const fix = opts.fix ?? 'run `az login` as the user the sidecar runs as (and `az account set` for the right tenant), or choose another --identity';
  const args = [
    'account',
    'get-access-token',
    '--resource',
    opts.resource,
    ...(opts.tenant !== undefined ? ['--tenant', opts.tenant] : []),
    '-o',
    'json',
  ];
  return {
    description,
    fix,
    async fetch(): Promise<AccessToken> {
      const { code, stdout, stderr } = await run(opts.azPath, args, opts.timeoutMs, opts.env, description, fix);
      if (code !== 0) {
        const reason =
          stderr
            .split(/\r?\n/)
            .map((l) => l.trim())
            .find((l) => l !== '' && !l.startsWith('WARNING')) ?? `exit code ${code}`;
        throw new IdentityError(`${description} failed: ${reason.slice(0, 300)}`, fix);
      }
      let json: unknown;
      try {
        json = JSON.parse(stdout);
      } catch {
        throw new IdentityError(`${description} printed something that is not JSON`, fix, 'bad_response');
      }
      const parsed = cliTokenSchema.safeParse(json);
      if (!parsed.success) throw new IdentityError(`${description} printed JSON without accessToken`, fix, 'bad_response');
      const expiresOnMs = cliExpiry(parsed.data);
      if (expiresOnMs === undefined || expiresOnMs <= opts.clock.now())
        throw new IdentityError(`${description} printed a token without a future expiry`, fix, 'bad_response');
      return { token: checkTokenShape(parsed.data.accessToken, description, fix), expiresOnMs };
    },
  };
}

function cliExpiry(data: z.infer<typeof cliTokenSchema>): number | undefined {
  const epoch = typeof data.expires_on === 'string' && /^\d+$/.test(data.expires_on) ? Number(data.expires_on) : data.expires_on;
  if (typeof epoch === 'number' && Number.isFinite(epoch)) return epoch * 1000;
  // `expiresOn` is "YYYY-MM-DD HH:MM:SS.ffffff" in the machine's local time zone.
  if (data.expiresOn !== undefined) {
    const ms = new Date(data.expiresOn.trim().replace(' ', 'T')).getTime();
    if (Number.isFinite(ms)) return ms;
  }
  return undefined;
}

function run(
  file: string,
  args: readonly string[],
  timeoutMs: number,
  env: Readonly<Record<string, string | undefined>>,
  description: string,
  fix: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { shell: false, stdio: ['ignore', 'pipe', 'pipe'], env: { ...env }, windowsHide: true });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outBytes = 0;
    let errBytes = 0;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    timer.unref();
    child.stdout.on('data', (chunk: Buffer) => {
      outBytes += chunk.length;
      if (outBytes <= MAX_OUTPUT_BYTES) out.push(chunk);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      errBytes += chunk.length;
      if (errBytes <= 64 * 1024) err.push(chunk);
    });
    child.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const what =
        e.code === 'ENOENT'
          ? `${file} was not found (install the Azure CLI or set FOUNDRY_AUTH_AZ_PATH)`
          : `${file} could not be started (${e.code ?? e.message})`;
      reject(new IdentityError(`${description}: ${what}`, fix, 'unreachable'));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (timedOut) return reject(new IdentityError(`${description} did not finish within ${timeoutMs} ms`, fix, 'timeout'));
      if (outBytes > MAX_OUTPUT_BYTES)
        return reject(new IdentityError(`${description} printed more than ${MAX_OUTPUT_BYTES} bytes`, fix, 'bad_response'));
      resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
  });
}
