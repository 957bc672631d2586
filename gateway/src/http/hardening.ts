import type { Context, MiddlewareHandler } from "hono";
import { cors } from "hono/cors";
import { secureHeaders } from "hono/secure-headers";
import { getConnInfo } from "@hono/node-server/conninfo";

/**
 * Security headers on every response (hono/secure-headers): a Content-Security-Policy that
 * allows only the gateway's own script and styles (the dashboard has no inline script), no
 * framing (clickjacking), no MIME sniffing, no referrer.
 */
export function securityHeaders(): MiddlewareHandler {
  return secureHeaders({
    contentSecurityPolicy: {
      defaultSrc: ["'self'"],
      scriptSrc: ["'self'"],
      styleSrc: ["'self'"],
      imgSrc: ["'self'", "data:"],
      connectSrc: ["'self'"],
      objectSrc: ["'none'"],
      baseUri: ["'none'"],
      formAction: ["'self'"],
      frameAncestors: ["'none'"],
    },
    xFrameOptions: "DENY",
    referrerPolicy: "no-referrer",
    crossOriginResourcePolicy: "same-origin",
  });
}

/** CORS only for the origins an operator lists (FM_HTTP_CORS_ORIGINS); none: no CORS headers at all. */
export function corsFor(origins: readonly string[]): MiddlewareHandler | undefined {
  if (origins.length === 0) return undefined;
  return cors({ origin: [...origins], allowHeaders: ["authorization", "content-type"], allowMethods: ["GET", "POST", "PUT", "DELETE"], maxAge: 600 });
}

/**
 * Counts failed token checks per client address: after `max` within `windowMs`, that address is
 * refused (429) until the window ends, whatever token it presents — guessing tokens is slow.
 */
export function failedTokenLimiter(options: { max: number; windowMs: number; now?: () => number }) {
  const now = options.now ?? Date.now;
  const failures = new Map<string, { count: number; since: number }>();
  const addressOf = (c: Context): string => {
    try {
      return getConnInfo(c).remote.address ?? "unknown";
    } catch {
      return "unknown";
    }
  };
  const current = (address: string) => {
    const entry = failures.get(address);
    if (entry && now() - entry.since >= options.windowMs) {
      failures.delete(address);
      return undefined;
    }
    return entry;
  };
  return {
    /** Seconds to wait when this caller is blocked, else undefined. */
    blockedFor(c: Context): number | undefined {
      const entry = current(addressOf(c));
      if (!entry || entry.count < options.max) return undefined;
      return Math.max(1, Math.ceil((entry.since + options.windowMs - now()) / 1000));
    },
    failed(c: Context): void {
      const address = addressOf(c);
      const entry = current(address) ?? { count: 0, since: now() };
      entry.count++;
      failures.set(address, entry);
      // Bounded: a flood of addresses forgets the oldest first.
      if (failures.size > 10_000) failures.delete(failures.keys().next().value!);
    },
  };
}
export type FailedTokenLimiter = ReturnType<typeof failedTokenLimiter>;
