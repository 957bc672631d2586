import { z } from "zod";
import { REGION_PATTERN, TOKEN_PATTERN } from "../protocol/tokens.js";

/** Bytes of an X25519 key (public or private) and of the engine's AES-256 vault key. */
export const KEY_BYTES = 32;

/**
 * A 32-byte key written as base64 (standard or URL-safe, padding optional), decoded to bytes.
 * The message never repeats the value: it may be a private key.
 */
export const Base64Key = z.string().transform((text, ctx) => {
  const bytes = decodeBase64(text.trim());
  if (!bytes || bytes.length !== KEY_BYTES) {
    ctx.addIssue({ code: "custom", message: `must be ${KEY_BYTES} bytes in base64 (${KEY_BYTES * 8}-bit key)` });
    return z.NEVER;
  }
  return bytes;
});

/** Strict base64 (either alphabet): Buffer.from alone silently skips characters it does not know. */
export function decodeBase64(text: string): Uint8Array | undefined {
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(text) || text.length === 0) return undefined;
  return new Uint8Array(Buffer.from(text.replace(/-/g, "+").replace(/_/g, "/"), "base64"));
}

/** The name of a secret: what a step lists under `vault:` and `secrets put` stores. */
export const SecretKeyName = z
  .string()
  .min(1)
  .max(256)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._\-/]*$/, "letters, digits and . _ - / only, starting with a letter or digit");

/** A tenant's id; '' is the vault of executions without a tenant. */
export const VaultTenant = z.string().max(256).default("");

/**
 * A worker pool as the vault addresses it: `<region>/<handler>`, or `<region>` alone for a key
 * every pool of that region shares.
 */
export const PoolName = z.string().refine((name) => {
  const [region, handler, ...rest] = name.split("/");
  return rest.length === 0 && REGION_PATTERN.test(region ?? "") && (handler === undefined || TOKEN_PATTERN.test(handler));
}, "must be <region>/<handler> or <region>");

/** `{"<region>/<handler>" | "<region>": "<base64 X25519 public key>"}`: whom the engine seals for. */
export const PoolPublicKeys = z.record(PoolName, Base64Key);
export type PoolPublicKeys = z.output<typeof PoolPublicKeys>;

/** A JSON object given as text (an environment variable), then checked against `schema`. */
export function jsonText<S extends z.ZodType>(schema: S) {
  return z.string().transform((text, ctx): z.output<S> => {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      ctx.addIssue({ code: "custom", message: "is not valid JSON" });
      return z.NEVER;
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      // Paths and rules only: a value here may be a key.
      for (const issue of parsed.error.issues) ctx.addIssue({ code: "custom", message: `${issue.path.join(".") || "(root)"}: ${issue.message}` });
      return z.NEVER;
    }
    return parsed.data;
  });
}
