import { isAbsolute, relative } from 'node:path';
import { DEFAULT_SEED } from '../emulator/state.js';
import { DEFAULT_CHAT_MODEL } from '../sample-backend/catalog.js';
import { POLICY_DEMO } from './policy-demo.js';

const DEMO_DOMAIN = DEFAULT_SEED.tenantDomain;

/**
 * The copy-paste commands `dev` prints, and the banner around them. Each command reads its token
 * from dev.json with `node -p` (Node is there whenever `npm start` ran; jq may not be), in any
 * POSIX shell (bash, zsh, sh).
 */

export interface DemoCommand {
  readonly id: 'alice-chat-stream' | 'carol-denied' | 'bob-control-plane' | 'bob-model-not-allowed' | 'alice-token-limit' | 'v1-token-mistake';
  /** One line saying what it shows. */
  readonly title: string;
  readonly command: string;
  /** What the user should see. */
  readonly expect: string;
}

export interface BannerInput {
  readonly sidecar: string;
  readonly sidecarAdmin: string;
  readonly backend: string;
  readonly emulator: string;
  readonly tenantId: string;
  readonly clientId: string;
  readonly clusterId: string;
  readonly devJson: string;
  readonly v1TokenFile: string;
  readonly logsDir: string;
  readonly sidecarLog: string;
  /** The namespace and name of the deployment `dev` created in the sample backend. */
  readonly deployment: { readonly namespace: string; readonly name: string };
  readonly readyInMs: number;
  /** The state directory as given to dev (`--dev` repeats it). */
  readonly stateDirArg: string;
  /** `az-env.sh`: points az at the emulator and puts foundry-auth on PATH. */
  readonly azEnvFile: string;
  /** The demo users' passwords (read by the printed `az login`, never printed). */
  readonly demoSecretsFile: string;
  /** Where the user runs the commands from (relative paths are shown when the files are below it). */
  readonly cwd: string;
}

/** `'...'` for a POSIX shell. */
export function shellQuote(text: string): string {
  return /^[A-Za-z0-9_./:@%+=,-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`;
}

/** A path as the user would type it from `cwd`: `./.foundry-auth/dev.json`, or absolute when outside. */
export function displayPath(file: string, cwd: string): string {
  const rel = relative(cwd, file);
  if (rel !== '' && !rel.startsWith('..') && !isAbsolute(rel)) return `./${rel}`;
  return file;
}

/** `$(node -p ...)` printing one field (`.tokens.alice`) of a JSON file. */
function fieldOf(file: string, field: string): string {
  if (/^[A-Za-z0-9_./@+-]+$/.test(file)) return `$(node -p "require('${file}')${field}")`;
  // An unusual path goes in as an argument, quoted for the shell, never spliced into code.
  return `$(node -p "JSON.parse(require('fs').readFileSync(process.argv[1],'utf8'))${field}" ${shellQuote(file)})`;
}

/** `$(node -p ...)` printing one token from dev.json. */
function tokenFrom(devJson: string, who: string): string {
  return fieldOf(devJson, `.tokens${/^[a-z]+$/.test(who) ? `.${who}` : `['${who}']`}`);
}

function bearer(devJson: string, who: string): string {
  return `-H "Authorization: Bearer ${tokenFrom(devJson, who)}"`;
}

const STATUS = `-w '\\nHTTP %{http_code}\\n'`;
const JSON_BODY = `-H 'Content-Type: application/json'`;

export function demoCommands(input: BannerInput): DemoCommand[] {
  const devJson = displayPath(input.devJson, input.cwd);
  const v1File = displayPath(input.v1TokenFile, input.cwd);
  const chat = `${input.sidecar}/v1/chat/completions`;
  const body = (who: string, stream: boolean, model: string = DEFAULT_CHAT_MODEL): string =>
    `-d '${JSON.stringify({ model, ...(stream ? { stream: true } : {}), messages: [{ role: 'user', content: `Hello from ${who}` }] })}'`;
  const deployment = `${input.sidecar}/api/v1/namespaces/${input.deployment.namespace}/deployments/${input.deployment.name}`;
  return [
    {
      id: 'alice-chat-stream',
      title: 'alice (Cognitive Services OpenAI User) streams a chat completion',
      command: `curl -N -sS ${chat} ${bearer(devJson, 'alice')} ${JSON_BODY} ${body('alice', true)}`,
      expect: 'server-sent events, one word at a time, ending in data: [DONE]',
    },
    {
      id: 'carol-denied',
      title: 'carol (no role) asks the same',
      command: `curl -sS ${STATUS} ${chat} ${bearer(devJson, 'carol')} ${JSON_BODY} ${body('carol', false)}`,
      expect: 'HTTP 403 insufficient_permissions: the action she lacks and the built-in roles that grant it',
    },
    {
      id: 'bob-control-plane',
      title: `bob (Cognitive Services Contributor) scales the deployment ${input.deployment.name} on the control plane`,
      command: `curl -sS ${STATUS} -X PATCH ${deployment} ${bearer(devJson, 'bob')} ${JSON_BODY} -d '{"replicas":2}'`,
      expect: 'HTTP 200 with the deployment, replicas 2 (alice gets 403 here: OpenAI User has no deployments/write)',
    },
    {
      id: 'bob-model-not-allowed',
      title: `bob asks for ${POLICY_DEMO.model}, which the policy file keeps for the app role ${POLICY_DEMO.role} (alice has it through the group ${POLICY_DEMO.group.displayName})`,
      command: `curl -sS ${STATUS} ${chat} ${bearer(devJson, 'bob')} ${JSON_BODY} ${body('bob', false, POLICY_DEMO.model)}`,
      expect: `HTTP 403 model_not_allowed: the model, bob, and the app role ${POLICY_DEMO.role} that would allow it`,
    },
    {
      id: 'alice-token-limit',
      title: `alice uses ${POLICY_DEMO.model} until the ${POLICY_DEMO.tokensPerMinute} tokens a minute the policy gives ${POLICY_DEMO.role} are spent`,
      command: `for i in 1 2 3 4 5; do curl -sS -o /dev/null -w 'HTTP %{http_code}\n' ${chat} ${bearer(devJson, 'alice')} ${JSON_BODY} ${body('alice', false, POLICY_DEMO.model)}; done`,
      expect: 'HTTP 200 while tokens remain, then HTTP 429 token_limit_exceeded (Retry-After and x-ratelimit-* headers say when to come back)',
    },
    {
      id: 'v1-token-mistake',
      title: 'a v1.0 token: an app registration left at accessTokenAcceptedVersion 1 (the mistake step 4 prevents)',
      command: `curl -sS ${STATUS} ${input.sidecar}/v1/models -H "Authorization: Bearer $(cat ${shellQuote(v1File)})"`,
      expect: 'HTTP 401 invalid_token: set accessTokenAcceptedVersion (api.requestedAccessTokenVersion) to 2',
    },
  ];
}

export function doctorCommand(input: BannerInput): string {
  return `foundry-auth doctor --dev ${shellQuote(input.stateDirArg)}`;
}

/** alice's password comes from the secrets file, as the tokens come from dev.json: printed nowhere. */
export function azLoginCommand(input: BannerInput): string {
  const password = fieldOf(displayPath(input.demoSecretsFile, input.cwd), '.passwords.alice');
  return `az login --tenant ${input.tenantId} --username alice@${DEMO_DOMAIN} --password "${password}" --output none`;
}

export function bannerText(input: BannerInput, commands: readonly DemoCommand[]): string {
  const devJson = displayPath(input.devJson, input.cwd);
  const sidecarLog = displayPath(input.sidecarLog, input.cwd);
  const lines = [
    '',
    `foundry-auth dev: ready in ${(input.readyInMs / 1000).toFixed(1)} s`,
    '',
    `  sidecar   ${input.sidecar}   (admin: ${input.sidecarAdmin}/readyz, /metrics)`,
    `  backend   ${input.backend}   (sample Foundry Local)`,
    `  emulator  ${input.emulator}  (Entra ID, Graph, ARM, msi-adapter; tenant ${input.tenantId})`,
    `  app       api://${input.clientId}  (scope foundry_access, app role FoundryInferenceAccess)`,
    `  cluster   ${input.clusterId}`,
    '',
    `  Tokens for alice, bob, carol and inference-client: ${devJson} (renewed while this runs).`,
    '  The commands below read them with node (no jq needed); run them from this directory in bash, zsh or sh.',
  ];
  commands.forEach((c, i) => {
    lines.push('', `${i + 1}. ${c.title}:`, `   ${c.command}`, `   -> ${c.expect}`);
  });
  const azEnv = displayPath(input.azEnvFile, input.cwd);
  lines.push(
    '',
    `First, in each shell you use: . ${shellQuote(azEnv)}   (puts foundry-auth on PATH and points az at the emulator)`,
    '',
    'Check the setup (and paste any fix the stack prints: it acts on this stack):',
    `   ${doctorCommand(input)}`,
    '',
    'The Azure CLI against the emulator (alice signs in; her token works at the sidecar):',
    `   ${azLoginCommand(input)}`,
    `   curl -sS ${STATUS} ${input.sidecar}/v1/models -H "Authorization: Bearer $(az account get-access-token --resource api://${input.clientId} --query accessToken -o tsv)"`,
    '',
    `Logs: ${displayPath(input.logsDir, input.cwd)}/{sidecar,backend,emulator}.log. One audit line per request:`,
    `   tail -f ${shellQuote(sidecarLog)} | grep '"msg":"request"'`,
    '',
    'Ctrl-C stops everything.',
    '',
  );
  return lines.join('\n');
}
