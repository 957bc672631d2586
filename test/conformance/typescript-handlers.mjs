// The conformance handlers for the TypeScript worker (flowmonkey-worker --handler-modules this file).
// The Python and Go ones (python-handlers.py, sdks/go/cmd/flowmonkey-conformance-worker) do the same.
import { defineHandler, NonRetryableFailure, RetryableFailure } from "@flowmonkey/worker";

export const shout = defineHandler({
  type: "conf-shout",
  async execute(ctx) {
    await ctx.progress.update(50, "halfway");
    return { text: String(ctx.input.text ?? "").toUpperCase(), lang: "typescript" };
  },
});

export const flaky = defineHandler({
  type: "conf-flaky",
  execute(ctx) {
    if (ctx.task.attempt === 1) throw new RetryableFailure("FLAKY", "the first attempt fails");
    return { attempt: ctx.task.attempt };
  },
});

// Not a conformance case (the shipped-binaries test's dead letter): fails, retryably, every
// attempt up to `failAttempts`, so a step whose retries end there is dead-lettered; a replay runs.
export const failsUntil = defineHandler({
  type: "conf-fails-until",
  execute(ctx) {
    if (ctx.task.attempt <= Number(ctx.input.failAttempts)) throw new RetryableFailure("NOT_YET", `attempt ${ctx.task.attempt} fails`);
    return { attempt: ctx.task.attempt };
  },
});

export const refuse = defineHandler({
  type: "conf-refuse",
  execute() {
    throw new NonRetryableFailure("NOPE", "this input is refused");
  },
});

export const slow = defineHandler({
  type: "conf-slow",
  async execute(ctx) {
    // Says it runs: a test then knows the handler, not just a pulled message, is in flight.
    await ctx.progress.update(1, "sleeping");
    await new Promise((resolve) => setTimeout(resolve, ctx.input.seconds * 1000));
    return { slept: ctx.input.seconds };
  },
});

/** Counts to input.to, saving a checkpoint after each step: a run after a crash carries on from it. */
export const count = defineHandler({
  type: "conf-count",
  async execute(ctx) {
    const saved = await ctx.checkpoint.load();
    const start = saved?.next ?? 0;
    for (let i = start; i < ctx.input.to; i++) {
      await ctx.checkpoint.save({ next: i + 1 });
      await new Promise((resolve) => setTimeout(resolve, ctx.input.pauseMs));
    }
    return { resumedFrom: start, reached: ctx.input.to };
  },
});

/** Parks until its token is resumed or a conf.approved event for its execution arrives; then says how. */
export const approve = defineHandler({
  type: "conf-approve",
  execute(ctx) {
    if (ctx.resume) return { reason: ctx.resume.reason, payload: ctx.resume.payload ?? null };
    const id = ctx.task.executionId;
    return ctx.wait({ resumeToken: `tok-${id}`, resumeOn: { event: "conf.approved", filter: `data.id = '${id}'` } });
  },
});

/** Emits conf.approved for the execution named in its input. */
export const emit = defineHandler({
  type: "conf-emit",
  async execute(ctx) {
    await ctx.events.emit("conf.approved", { id: ctx.input.id });
    return { emitted: ctx.input.id };
  },
});

// Grows the context by one key of `size` characters (an offloaded context is made of such keys).
export const fill = defineHandler({
  type: "conf-fill",
  execute(ctx) {
    ctx.context.set(ctx.input.key, "x".repeat(ctx.input.size));
    return { filled: ctx.input.key };
  },
});

// Reads a context the engine offloaded (key by key), and writes one key.
export const read = defineHandler({
  type: "conf-read",
  async execute(ctx) {
    const before = await ctx.context.get("read");
    const out = { marker: await ctx.context.get("marker"), big1: (await ctx.context.get("big1")).length, big2: (await ctx.context.get("big2")).length, readBefore: before === true };
    ctx.context.set("read", true);
    return out;
  },
});

// Saves a 1.5 MB checkpoint (over the 1 MiB KV limit: the blob store) and fails; the retry loads it.
export const bigCheckpoint = defineHandler({
  type: "conf-big-checkpoint",
  async execute(ctx) {
    const saved = await ctx.checkpoint.load();
    if (saved) return { loaded: saved.rows.length, attempt: ctx.task.attempt };
    await ctx.checkpoint.save({ rows: "r".repeat(1_500_000) });
    throw new RetryableFailure("AGAIN", "saved a large checkpoint; the next attempt loads it");
  },
});

// Opens the step's sealed secret; answers only its length and a digest, never the value.
export const secret = defineHandler({
  type: "conf-secret",
  async execute(ctx) {
    const value = ctx.secrets.get("conf-token") ?? "";
    const { createHash } = await import("node:crypto");
    return { length: value.length, sha256: createHash("sha256").update(value).digest("hex").slice(0, 16) };
  },
});

// Pauses with state (slot freed, checkpoint saved); resumed by its token, it loads the state back.
export const pause = defineHandler({
  type: "conf-pause",
  async execute(ctx) {
    if (ctx.resume) return { state: await ctx.checkpoint.load(), reason: ctx.resume.reason };
    return ctx.pause.wait({ reason: "holding", state: { n: 5 }, resumeToken: `pause-${ctx.task.executionId}` });
  },
});
