import type { Exchange } from '../exchange.js';
import { applicationRoutes } from './applications.js';
import { armRoutes } from './arm.js';
import { directoryRoutes } from './directory.js';
import { AdminError, fail, type AdminContext, type AdminRoute } from './route.js';

export type { AdminContext };
import { systemRoutes } from './system.js';
import { tokenRoutes } from './tokens.js';

/** Dispatch of `/_emulator/...` requests to the routes of each resource. */

const ROUTES: readonly AdminRoute[] = [...systemRoutes, ...directoryRoutes, ...applicationRoutes, ...armRoutes, ...tokenRoutes];

/** Runs a handler; a refusal it throws becomes the error response. */
async function answer(ex: Exchange, handler: () => void | Promise<void>): Promise<void> {
  try {
    await handler();
  } catch (err) {
    if (!(err instanceof AdminError)) throw err;
    fail(ex, err.status, err.code, err.message);
  }
}

/** The admin route for a path under `/_emulator` (path without the prefix), for counters and dispatch. */
export function adminRoute(
  method: string,
  path: string,
): { name: string; run: (ctx: AdminContext, ex: Exchange) => void | Promise<void> } | undefined {
  let pathMatched = false;
  for (const r of ROUTES) {
    const m = r.pattern.exec(path);
    if (m === null) continue;
    pathMatched = true;
    if (r.method !== method) continue;
    return { name: r.name, run: (ctx, ex) => answer(ex, () => r.handler(ctx, ex, m.slice(1))) };
  }
  if (pathMatched)
    return { name: `/_emulator${path}`, run: (_ctx, ex) => fail(ex, 405, 'method_not_allowed', `${method} is not allowed on /_emulator${path}`) };
  return undefined;
}
