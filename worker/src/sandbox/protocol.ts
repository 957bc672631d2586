import { z } from "zod";

/**
 * What a sandbox process may say to the worker. The sandbox runs untrusted code, so every
 * message is parsed against these schemas before anything acts on it; a message that does not
 * parse kills the sandbox (SANDBOX_VIOLATION). Messages travel as `<run>|<json>` strings: the
 * run number lets the worker drop whatever a finished run still sends.
 */
const Json = z.unknown();
const Failure = z.object({ code: z.string().min(1).max(128), message: z.string().max(16_384), retryable: z.boolean().optional() });

/** The wait a handler asked for (`ctx.wait(...)`, `ctx.pause.wait(...)`), as far as the worker passes it on. */
export const SandboxWait = z
  .object({
    resumeToken: z.string().min(1).max(256).optional(),
    waitUntil: z.string().max(64).optional(),
    timeoutMs: z.number().int().min(0).optional(),
    maxWaitMs: z.number().int().min(0).optional(),
    resumeOn: z.object({ event: z.string().max(1024), filter: z.string().max(4096).optional() }).optional(),
    reason: z.string().max(1024).optional(),
    state: Json.optional(),
  })
  .strip();
export type SandboxWait = z.infer<typeof SandboxWait>;

export const Done = z.discriminatedUnion("outcome", [
  z.object({ t: z.literal("done"), outcome: z.literal("success"), output: Json }),
  z.object({ t: z.literal("done"), outcome: z.literal("failure"), failure: Failure }),
  z.object({ t: z.literal("done"), outcome: z.literal("wait"), wait: SandboxWait }),
  z.object({ t: z.literal("done"), outcome: z.literal("pause"), wait: SandboxWait }),
]);
export type Done = z.infer<typeof Done>;

export const Request = z.discriminatedUnion("op", [
  z.object({ t: z.literal("req"), id: z.number().int(), op: z.literal("context.get"), args: z.object({ path: z.string().max(1024).optional() }) }),
  z.object({ t: z.literal("req"), id: z.number().int(), op: z.literal("checkpoint.save"), args: z.object({ state: Json }) }),
  z.object({ t: z.literal("req"), id: z.number().int(), op: z.literal("checkpoint.load"), args: z.object({}) }),
  z.object({ t: z.literal("req"), id: z.number().int(), op: z.literal("checkpoint.clear"), args: z.object({}) }),
  z.object({ t: z.literal("req"), id: z.number().int(), op: z.literal("events.emit"), args: z.object({ name: z.string().max(1024), data: Json }) }),
  z.object({
    t: z.literal("req"),
    id: z.number().int(),
    op: z.literal("fetch"),
    args: z.object({ url: z.string().max(8192), method: z.string().regex(/^[A-Za-z]{1,16}$/), headers: z.record(z.string(), z.string()), body: z.string().optional() }),
  }),
]);
export type Request = z.infer<typeof Request>;

export const Note = z.discriminatedUnion("op", [
  z.object({ t: z.literal("note"), op: z.literal("progress"), args: z.object({ percent: z.number(), message: z.string().max(1024).optional() }) }),
  z.object({ t: z.literal("note"), op: z.literal("context.set"), args: z.object({ path: z.string().max(1024), value: Json }) }),
  z.object({ t: z.literal("note"), op: z.literal("context.merge"), args: z.object({ path: z.string().max(1024).optional(), value: z.record(z.string(), Json) }) }),
  z.object({ t: z.literal("note"), op: z.literal("context.delete"), args: z.object({ path: z.string().max(1024) }) }),
  z.object({
    t: z.literal("note"),
    op: z.literal("log"),
    args: z.object({ level: z.enum(["debug", "info", "warn", "error"]), msg: z.string().max(2048), fields: Json.optional() }),
  }),
]);
export type Note = z.infer<typeof Note>;

export const FromSandbox = z.union([
  Done,
  Request,
  Note,
  z.object({ t: z.enum(["hello", "ready", "idle"]) }),
  z.object({ t: z.literal("init-failed"), message: z.string().max(16_384) }),
  z.object({ t: z.literal("stray"), message: z.string().max(4096) }),
]);
export type FromSandbox = z.infer<typeof FromSandbox>;

/** Splits `<run>|<json>` and parses it; undefined when it is not a valid message. */
export function parseFromSandbox(raw: unknown): { run: number; message: FromSandbox } | undefined {
  if (typeof raw !== "string") return undefined;
  const bar = raw.indexOf("|");
  const run = Number(raw.slice(0, bar));
  if (bar < 1 || !Number.isSafeInteger(run)) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(raw.slice(bar + 1));
  } catch {
    return undefined; // not JSON: the caller treats it as a violation
  }
  const parsed = FromSandbox.safeParse(json);
  return parsed.success ? { run, message: parsed.data } : undefined;
}

/** Worker → sandbox (trusted direction). */
export type ToSandbox =
  | { t: "init"; code: string; filename: string }
  | { t: "run"; run: number; input: string; task: string; secrets: string; resume?: string }
  | { t: "reply"; run: number; id: number; ok: boolean; payload?: string };
