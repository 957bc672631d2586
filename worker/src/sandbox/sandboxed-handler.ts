import { EventName, FmError, MAX_HARD_TTL_MS, refName, toError, type VerifiedBundle } from "@flowmonkey/shared";
import { defineHandler, type AnyHandler } from "../sdk/define-handler.js";
import type { HandlerContext } from "../sdk/handler-context.js";
import type { WaitOptions } from "../sdk/wait.js";
import type { BudgetLimits } from "./message-budget.js";
import { FetchLimiter, type NetworkPolicy } from "./network-guard.js";
import type { ProcessSource } from "./process-source.js";
import type { Done, Note, Request, SandboxWait } from "./protocol.js";
import type { Bridge } from "./sandbox-process.js";

export interface SandboxedHandlerOptions {
  network?: NetworkPolicy;
  limits?: BudgetLimits;
}

/** A failure the sandboxed handler threw, rebuilt on the worker side with the code and retry flag it gave. */
class SandboxedFailure extends Error {
  override readonly name = "SandboxedFailure";
  constructor(
    readonly code: string,
    message: string,
    readonly retryable: boolean | undefined,
  ) {
    super(message);
  }
}

/**
 * A handler whose code runs in a sandbox process: to the worker's runner it is a handler like
 * any other (executeTask gives it a context, validates nothing more, races the task timeout),
 * and its execute() bridges the sandbox's plumbing calls to that context. The manifest's TTLs
 * and checkpoint interval are enforced here, by killing the process.
 */
export function sandboxedHandler(bundle: VerifiedBundle, source: ProcessSource, options: SandboxedHandlerOptions = {}): AnyHandler {
  const m = bundle.manifest;
  const hardMs = m.mode === "stateless" ? Math.min(m.timeout.hardMs, MAX_HARD_TTL_MS) : m.timeout.hardMs;
  const vaultInputs = Object.entries(m.inputs).filter(([, input]) => input.vault).map(([name]) => name);

  return defineHandler({
    type: m.type,
    version: m.version,
    async execute(ctx: HandlerContext) {
      const sandbox = await source.acquire();
      const timers: NodeJS.Timeout[] = [];
      let overdue: NodeJS.Timeout | undefined;
      const armCheckpointWatch = () => {
        if (m.mode !== "stateful" || !m.checkpoint.required || m.checkpoint.intervalMs === undefined) return;
        clearTimeout(overdue);
        const every = m.checkpoint.intervalMs;
        overdue = setTimeout(() => sandbox.kill(new FmError("CHECKPOINT_OVERDUE", `${refName(m)} saved no checkpoint for ${every} ms (its manifest's interval)`)), every);
      };
      // Every fetch of this run: each with its own timeout, at most FETCH_DEFAULTS.inFlight at once, all aborted when the run ends.
      const fetches = new FetchLimiter(ctx.signal, options.network);
      const bridge: Bridge = {
        request: async (req) => {
          const value = await serve(req, ctx, fetches);
          if (req.op === "checkpoint.save") armCheckpointWatch();
          return value;
        },
        note: (note) => take(note, ctx),
        stray: (message) => ctx.log.warn({ stray: message }, "sandboxed handler: stray error (an unhandled rejection or a throwing timer)"),
      };
      // Only the secrets the manifest declares as vault inputs, and only those the step was given.
      const secrets: Record<string, string> = {};
      for (const name of vaultInputs) {
        const value = ctx.secrets.get(name);
        if (value !== undefined) secrets[name] = value;
      }
      const { end, idle } = sandbox.run({ input: ctx.input, task: ctx.task, secrets, resume: ctx.resume }, bridge, options.limits ?? {});
      timers.push(setTimeout(() => sandbox.kill(new FmError("TIMEOUT", `${refName(m)} did not finish within its hard TTL of ${hardMs} ms; its sandbox was killed`)), hardMs));
      const softMs = m.timeout.softMs;
      if (softMs !== undefined) {
        timers.push(
          setTimeout(() => {
            ctx.log.warn({ softMs, hardMs }, "sandboxed handler passed its soft TTL");
            ctx.events.emit("sandbox.soft-ttl", { handler: refName(m), softMs, hardMs }).catch((err: unknown) => ctx.log.debug({ err: toError(err) }, "soft TTL event not stored"));
          }, softMs),
        );
      }
      armCheckpointWatch();
      // The task's own timeout or the worker's shutdown: the run is already settled; stop the process.
      const onAbort = () => sandbox.kill(new FmError("CANCELLED", "the task was aborted"));
      ctx.signal.addEventListener("abort", onAbort, { once: true });
      let ended;
      try {
        ended = await end;
      } finally {
        for (const t of timers) clearTimeout(t);
        clearTimeout(overdue);
        ctx.signal.removeEventListener("abort", onAbort);
        fetches.close();
        source.release(sandbox, idle);
      }
      if (ended.kind === "killed") throw ended.error;
      return answer(ended.done, ctx);
    },
  });
}

/** The sandbox's answer as the runner expects it from a handler: a value, a Wait, or a throw. */
async function answer(done: Done, ctx: HandlerContext): Promise<unknown> {
  switch (done.outcome) {
    case "success":
      return done.output;
    case "failure":
      throw new SandboxedFailure(done.failure.code, done.failure.message, done.failure.retryable);
    case "wait":
      return ctx.wait(waitOptions(done.wait));
    case "pause": {
      const w = done.wait;
      const resumeOn = w.resumeOn ? parseResumeOn(w.resumeOn) : undefined;
      return ctx.pause.wait({
        reason: w.reason ?? "paused",
        ...(w.maxWaitMs === undefined ? {} : { maxWaitMs: w.maxWaitMs }),
        ...(resumeOn ? { resumeOn } : {}),
        ...(w.resumeToken ? { resumeToken: w.resumeToken } : {}),
        ...(w.state === undefined ? {} : { state: w.state }),
      });
    }
  }
}

function parseResumeOn(on: NonNullable<SandboxWait["resumeOn"]>): NonNullable<WaitOptions["resumeOn"]> {
  const event = EventName.safeParse(on.event);
  if (!event.success) throw new FmError("INVALID_INPUT", `wait: resumeOn.event ${JSON.stringify(on.event.slice(0, 100))} is not an event name`);
  return { event: event.data, ...(on.filter ? { filter: on.filter } : {}) };
}

function waitOptions(w: SandboxWait): WaitOptions {
  const resumeOn = w.resumeOn ? parseResumeOn(w.resumeOn) : undefined;
  return {
    ...(w.resumeToken ? { resumeToken: w.resumeToken } : {}),
    ...(w.waitUntil ? { waitUntil: w.waitUntil } : {}),
    ...(w.timeoutMs === undefined ? {} : { timeoutMs: w.timeoutMs }),
    ...(resumeOn ? { resumeOn } : {}),
    ...(w.reason ? { reason: w.reason } : {}),
  };
}

async function serve(req: Request, ctx: HandlerContext, fetches: FetchLimiter): Promise<unknown> {
  switch (req.op) {
    case "context.get":
      return ctx.context.get(req.args.path);
    case "checkpoint.save":
      return ctx.checkpoint.save(req.args.state);
    case "checkpoint.load":
      return ctx.checkpoint.load();
    case "checkpoint.clear":
      return ctx.checkpoint.clear();
    case "events.emit": {
      const name = EventName.safeParse(req.args.name);
      if (!name.success) throw new FmError("INVALID_INPUT", `events.emit: ${JSON.stringify(req.args.name.slice(0, 100))} is not an event name`);
      return ctx.events.emit(name.data, req.args.data);
    }
    case "fetch":
      return fetches.fetch(req.args);
  }
}

function take(note: Note, ctx: HandlerContext): void {
  try {
    switch (note.op) {
      case "progress":
        void ctx.progress.update(note.args.percent, note.args.message);
        return;
      case "context.set":
        return ctx.context.set(note.args.path, note.args.value);
      case "context.merge":
        return note.args.path === undefined ? ctx.context.merge(note.args.value) : ctx.context.merge(note.args.path, note.args.value);
      case "context.delete":
        return ctx.context.delete(note.args.path);
      case "log":
        ctx.log[note.args.level]({ handlerFields: note.args.fields }, note.args.msg);
        return;
    }
  } catch (err) {
    ctx.log.warn({ err: toError(err), op: note.op }, "sandboxed handler: a plumbing call was refused");
  }
}
