import { abortableDelay } from "@flowmonkey/shared";
import { z } from "zod";
import { defineHandler } from "../sdk/define-handler.js";

/** Reports about every 10 % of the wait, but not more often than this. */
const MIN_PROGRESS_STEP_MS = 100;

/** Waits `ms`, reporting progress as it goes; stops as soon as its signal fires. */
export const delay = defineHandler({
  type: "delay",
  version: "1",
  input: z.object({ ms: z.number().int().min(0).max(2 ** 31 - 1).describe("how long to wait, in milliseconds; progress is reported about every 10 %") }),
  docs: {
    summary: "Waits, holding its worker slot, and reports progress as it goes; stops at once when the task is cancelled or times out. For a wait that holds no worker, use `wait`.",
    output: "`waitedMs`: how long it waited",
    example: { input: { ms: 250 }, output: { waitedMs: 250 } },
  },
  async execute(ctx) {
    const { ms } = ctx.input;
    const startedAt = Date.now();
    const step = Math.max(MIN_PROGRESS_STEP_MS, ms / 10);
    // Short waits report nothing: a progress bar for 50 ms is noise, and each update is a KV write.
    const reports = ms >= MIN_PROGRESS_STEP_MS;
    for (;;) {
      const left = ms - (Date.now() - startedAt);
      if (left <= 0) break;
      if (!(await abortableDelay(Math.min(step, left), ctx.signal))) throw ctx.signal.reason;
      if (reports) {
        const elapsed = Math.min(ms, Date.now() - startedAt);
        void ctx.progress.update(Math.round((elapsed / ms) * 100), `waited ${elapsed} of ${ms} ms`);
      }
    }
    return { waitedMs: Date.now() - startedAt };
  },
});
