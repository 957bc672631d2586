import { FmError } from "@flowmonkey/shared";
import type { Context, MiddlewareHandler } from "hono";
import type { FailedTokenLimiter } from "../hardening.js";
import { problemResponse, toProblem } from "../problem.js";
import { authenticate, hasScope, type Principal, type TokenScope } from "./tokens.js";

declare module "hono" {
  interface ContextVariableMap {
    /** The caller's token grant; absent when the gateway runs without API tokens (dev). */
    principal: Principal | undefined;
  }
}

/**
 * The event streams (GET …/events): a browser's EventSource cannot send an Authorization
 * header, so these routes also take the token as `?access_token=` (RFC 6750 §2.3). Only these:
 * a token in a URL can end up in proxy logs and browser history, and every other route is
 * called with fetch, which can send the header. The gateway itself logs paths without queries.
 */
const STREAM_ROUTE = /^\/v1\/(?:events|executions\/[^/]+\/events|flows\/[^/]+\/events)$/;

function presentedToken(c: Context): string | undefined {
  const header = c.req.header("authorization");
  if (header !== undefined || c.req.method !== "GET" || !STREAM_ROUTE.test(c.req.path)) return header;
  const query = c.req.query("access_token");
  return query === undefined ? undefined : `Bearer ${query}`;
}

/** On /v1/*: every request carries a known token, or is answered 401 before any route runs. */
export function requireToken(tokens: ReadonlyMap<string, Principal>, limiter?: FailedTokenLimiter): MiddlewareHandler {
  return async (c, next) => {
    const wait = limiter?.blockedFor(c);
    if (wait !== undefined) {
      return problemResponse(toProblem(new FmError("RATE_LIMITED", `too many failed token checks from this address; try again in ${wait} s`)), {
        "retry-after": String(wait),
      });
    }
    try {
      c.set("principal", authenticate(tokens, presentedToken(c)));
    } catch (thrown) {
      limiter?.failed(c);
      return problemResponse(toProblem(thrown), { "www-authenticate": 'Bearer realm="flowmonkey"' });
    }
    await next();
  };
}

/**
 * The caller may use this scope; returns the tenant it is confined to (undefined: any tenant —
 * an operator's token, or no tokens configured).
 */
export function allow(c: Context, scope: TokenScope): string | undefined {
  const principal = c.get("principal");
  if (!principal) return undefined;
  if (!hasScope(principal, scope)) throw new FmError("FORBIDDEN", `this token lacks the ${scope} scope`);
  return principal.tenantId;
}

/** Mesh-wide operations (queues, workers, dead letters, lanes, flows): operators' tokens only. */
export function allowOperator(c: Context, scope: TokenScope): void {
  if (allow(c, scope) !== undefined) throw new FmError("FORBIDDEN", "a tenant's token cannot see or change the mesh itself");
}

/**
 * A tenant's token asked for a tenant in its request: it must be its own. Returns the tenant
 * the request is confined to (its own), or the requested one for an operator.
 */
export function confineTenant(confinedTo: string | undefined, requested: string | undefined): string | undefined {
  if (confinedTo === undefined) return requested;
  if (requested !== undefined && requested !== confinedTo) throw new FmError("FORBIDDEN", "this token belongs to another tenant");
  return confinedTo;
}

/** An execution of another tenant does not exist for a tenant's token (404, not 403: nothing leaks). */
export function assertVisible(confinedTo: string | undefined, execution: { id: string; tenantId?: string | undefined }): void {
  if (confinedTo !== undefined && execution.tenantId !== confinedTo) throw new FmError("EXECUTION_NOT_FOUND", `no execution ${execution.id}`);
}
