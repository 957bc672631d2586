import { createHash } from "node:crypto";
import { FmError } from "@flowmonkey/shared";
import { z } from "zod";

/** read ⊂ write ⊂ admin: each scope includes the ones before it. */
export const TOKEN_SCOPES = ["read", "write", "admin"] as const;
export const TokenScope = z.enum(TOKEN_SCOPES);
export type TokenScope = z.infer<typeof TokenScope>;

/**
 * What one token may do. With `tenantId` it is a tenant's token: it sees and acts on that
 * tenant's executions only, and never on the mesh itself. Without, it is an operator's token.
 */
export const ApiTokenGrant = z.object({ tenantId: z.string().min(1).max(128).optional(), scopes: z.array(TokenScope).min(1), name: z.string().max(128).optional() }).strict();
export type Principal = z.infer<typeof ApiTokenGrant>;

/**
 * `FM_API_TOKENS`: `{"<sha256 hex of the token>": {tenantId?, scopes, name?}}`. Only hashes are
 * configured, so the gateway's environment and config files never hold a usable token.
 */
export const ApiTokens = z.record(z.string().regex(/^[0-9a-f]{64}$/, "keys are the sha256 (hex, lowercase) of each token"), ApiTokenGrant);
export type ApiTokens = z.infer<typeof ApiTokens>;

export const hashToken = (token: string): string => createHash("sha256").update(token, "utf8").digest("hex");

const BEARER = /^Bearer ([\x21-\x7e]{16,512})$/;

/**
 * Authorization header → the grant of its token. The lookup is by the token's hash, so timing
 * reveals nothing about stored tokens (an attacker cannot steer a hash's prefix).
 */
export function authenticate(tokens: ReadonlyMap<string, Principal>, authorization: string | undefined): Principal {
  const match = BEARER.exec(authorization ?? "");
  if (!match) throw new FmError("UNAUTHORIZED", "send an API token: Authorization: Bearer <token>");
  const grant = tokens.get(hashToken(match[1]!));
  if (!grant) throw new FmError("UNAUTHORIZED", "the API token is not known");
  return grant;
}

export function hasScope(principal: Principal, needed: TokenScope): boolean {
  const rank = TOKEN_SCOPES.indexOf(needed);
  return principal.scopes.some((s) => TOKEN_SCOPES.indexOf(s) >= rank);
}
