import type { Emulator } from '../core.js';
import { sendJson, type Exchange } from '../exchange.js';

/** Microsoft Graph under `/graph` (placeholder until the Graph slice lands). */
export interface GraphRoute {
  readonly pattern: string;
  readonly run: (em: Emulator, ex: Exchange) => void;
}

export function graphRoute(_method: string, _path: string): GraphRoute | undefined {
  return undefined;
}

export function handleGraph(_em: Emulator, ex: Exchange, route: GraphRoute | undefined): void {
  if (route === undefined) sendJson(ex.res, 400, { error: { code: 'BadRequest', message: 'Resource not found for the segment.' } });
}
