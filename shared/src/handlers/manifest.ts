import { createHash } from "node:crypto";
import { z } from "zod";
import { FmError } from "../errors/fm-error.js";
import { Token } from "../protocol/tokens.js";

/** The longest a sandboxed handler may run before its sandbox is killed, whatever its manifest says. */
export const MAX_HARD_TTL_MS = 60_000;
/** Stateful handlers run one process per task and may run longer (they checkpoint). */
export const MAX_STATEFUL_HARD_TTL_MS = 24 * 60 * 60 * 1000;

/** Environment names that change how the sandbox process itself starts: never from a manifest. */
const RUNTIME_ENV = /^(NODE_|LD_|DYLD_|UV_|OPENSSL_|SSL_|V8_)|^(PATH|HOME|TMPDIR)$/;
export const isRuntimeEnvName = (name: string): boolean => RUNTIME_ENV.test(name);

/** Semver-ish: digits, dots, and an optional pre-release tag; it becomes part of an object name. */
const Version = z.string().regex(/^\d+(\.\d+){0,2}(-[A-Za-z0-9.]{1,32})?$/, "must look like 1.2.3 (optionally -tag)");

/** One input the handler reads; `vault: true` means its value comes from the step's sealed secrets. */
const ManifestInput = z
  .object({
    description: z.string().max(1024).optional(),
    required: z.boolean().default(false),
    vault: z.boolean().default(false),
  })
  .strict();

/**
 * A sandboxed handler's manifest: what it is, how it runs and what it may touch. Written by the
 * handler's author (`handler.json` beside the source), completed by `flowmonkey handler build`
 * with the bundle's sha256, and parsed again by every worker that loads it: a manifest is outside
 * input, as untrusted as the code it describes.
 */
export const HandlerManifest = z
  .object({
    type: Token,
    version: Version,
    category: z.string().regex(/^[a-z0-9-]{1,64}$/).default("general"),
    description: z.string().max(4096).optional(),
    /** stateless: a warm pool of sandboxes serves many tasks; stateful: one process per task, checkpointed. */
    mode: z.enum(["stateless", "stateful"]).default("stateless"),
    timeout: z
      .object({
        /** A warning (log and `sandbox.soft-ttl` event) when the run passes this. */
        softMs: z.number().int().min(100).optional(),
        /** The sandbox is killed and the task fails with TIMEOUT when the run passes this. */
        hardMs: z.number().int().min(100).max(MAX_STATEFUL_HARD_TTL_MS),
        /** What the step's timeout is when the flow sets none (documentation for flow authors). */
        defaultMs: z.number().int().min(100).optional(),
      })
      .strict()
      .default({ hardMs: 30_000 }),
    checkpoint: z
      .object({
        required: z.boolean().default(false),
        /** A stateful run that goes this long without a checkpoint is killed (CHECKPOINT_OVERDUE). */
        intervalMs: z.number().int().min(100).optional(),
      })
      .strict()
      .default({ required: false }),
    inputs: z.record(z.string().regex(/^[A-Za-z0-9_.-]{1,128}$/), ManifestInput).default({}),
    resources: z.object({ tier: z.enum(["small", "medium", "large"]).default("small") }).strict().default({ tier: "small" }),
    /**
     * Environment variables of the sandbox process (constants; the worker's own environment never
     * reaches it). Names the runtime or the loader reads (NODE_OPTIONS could grant file or child
     * process permissions, LD_PRELOAD load a library) are refused.
     */
    env: z
      .record(
        z
          .string()
          .regex(/^[A-Z][A-Z0-9_]{0,63}$/)
          .refine((name) => !isRuntimeEnvName(name), "names the Node runtime or the loader reads (NODE_*, LD_*, …) are not allowed"),
        z.string().max(4096),
      )
      .default({}),
    /** Source entry, relative to the manifest (build input only). */
    entry: z.string().max(1024).optional(),
    /** Set by `flowmonkey handler build`. */
    bundle: z.object({ file: z.literal("handler.js"), sha256: z.string().regex(/^[0-9a-f]{64}$/), bytes: z.number().int().min(0) }).strict().optional(),
  })
  .strict()
  .superRefine((m, ctx) => {
    if (m.mode === "stateless" && m.timeout.hardMs > MAX_HARD_TTL_MS) {
      ctx.addIssue({ code: "custom", path: ["timeout", "hardMs"], message: `a stateless handler's hard TTL is at most ${MAX_HARD_TTL_MS} ms` });
    }
    if (m.timeout.softMs !== undefined && m.timeout.softMs >= m.timeout.hardMs) {
      ctx.addIssue({ code: "custom", path: ["timeout", "softMs"], message: "the soft TTL must be below the hard TTL" });
    }
    if (m.checkpoint.required && m.checkpoint.intervalMs === undefined) {
      ctx.addIssue({ code: "custom", path: ["checkpoint", "intervalMs"], message: "a required checkpoint needs an interval" });
    }
  });
export type HandlerManifest = z.output<typeof HandlerManifest>;
export type HandlerManifestInput = z.input<typeof HandlerManifest>;

/** A built manifest: the bundle's hash is known. */
export type BuiltManifest = HandlerManifest & { bundle: NonNullable<HandlerManifest["bundle"]> };

/** `type@version`, the name under which a bundle is stored and a worker is told to load it. */
export const HandlerRef = z
  .string()
  .regex(/^([A-Za-z0-9_-]{1,128})@(\d+(\.\d+){0,2}(-[A-Za-z0-9.]{1,32})?)$/, "must be type@version (e.g. resize@1.0.0)")
  .transform((ref) => {
    const at = ref.indexOf("@");
    return { type: ref.slice(0, at), version: ref.slice(at + 1) };
  });
export type HandlerRef = z.output<typeof HandlerRef>;

export const refName = (ref: { type: string; version: string }) => `${ref.type}@${ref.version}`;

/** Where a built handler lives: in a directory `<dir>/<type>@<version>/`, or under the same prefix in `fm_handlers`. */
export const BUNDLE_FILES = { manifest: "manifest.json", code: "handler.js" } as const;

export function sha256Hex(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** A loaded, verified bundle: the code hashes to what the manifest says, and the manifest is the one asked for. */
export interface VerifiedBundle {
  manifest: BuiltManifest;
  code: Uint8Array;
}

/**
 * Parses a manifest and checks its bundle against it. Anything off is HANDLER_INTEGRITY: a
 * worker never runs code whose hash or identity it cannot vouch for.
 */
export function verifyBundle(ref: HandlerRef, manifestBytes: Uint8Array, code: Uint8Array, where: string): VerifiedBundle {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder().decode(manifestBytes));
  } catch (cause) {
    throw new FmError("HANDLER_INTEGRITY", `${where}: manifest is not JSON`, { cause });
  }
  const parsed = HandlerManifest.safeParse(raw);
  if (!parsed.success) throw new FmError("HANDLER_INTEGRITY", `${where}: invalid manifest: ${z.prettifyError(parsed.error)}`);
  const manifest = parsed.data;
  if (manifest.type !== ref.type || manifest.version !== ref.version) {
    throw new FmError("HANDLER_INTEGRITY", `${where}: manifest is ${refName(manifest)}, expected ${refName(ref)}`);
  }
  if (!manifest.bundle) throw new FmError("HANDLER_INTEGRITY", `${where}: manifest has no bundle hash (build it with \`flowmonkey handler build\`)`);
  const actual = sha256Hex(code);
  if (actual !== manifest.bundle.sha256 || code.byteLength !== manifest.bundle.bytes) {
    throw new FmError("HANDLER_INTEGRITY", `${where}: ${BUNDLE_FILES.code} has sha256 ${actual}, the manifest says ${manifest.bundle.sha256}`);
  }
  return { manifest: { ...manifest, bundle: manifest.bundle }, code };
}
