import { EventName, ResumeToken } from "@flowmonkey/shared";
import { z } from "zod";
import { defineHandler } from "../sdk/define-handler.js";
import { NonRetryableFailure } from "../sdk/failures.js";

/**
 * Parks its step until someone resumes it: an approval, a webhook, a human. Resumed by its token
 * or by an event, its output is the resume payload (the event's data); when `timeoutMs` or
 * `waitUntil` passes first, it fails with WAIT_TIMEOUT (give the step `onFailure: continue` to
 * go on without it). Holds no worker slot while it waits.
 */
export const wait = defineHandler({
  type: "wait",
  version: "1",
  input: z
    .object({
      /** Default: a random token (see the step's `wait` in executions.get, or the `waiting` event). */
      resumeToken: ResumeToken.optional(),
      timeoutMs: z.number().int().positive().optional(),
      waitUntil: z.iso.datetime({ offset: true }).optional(),
      event: EventName.optional(),
      /** JSONata over `{ name, data, executionId, stepId, at }`. */
      filter: z.string().max(4096).optional(),
      reason: z.string().max(512).optional(),
    })
    .strict()
    .refine((i) => i.filter === undefined || i.event !== undefined, { message: "filter needs an event", path: ["filter"] }),
  execute(ctx) {
    const resume = ctx.resume;
    if (!resume) {
      const { resumeToken, timeoutMs, waitUntil, event, filter, reason } = ctx.input;
      return ctx.wait({
        ...(resumeToken ? { resumeToken } : {}),
        ...(timeoutMs === undefined ? {} : { timeoutMs }),
        ...(waitUntil ? { waitUntil } : {}),
        ...(event ? { resumeOn: { event, ...(filter ? { filter } : {}) } } : {}),
        ...(reason ? { reason } : {}),
      });
    }
    if (resume.reason === "timeout") throw new NonRetryableFailure("WAIT_TIMEOUT", `not resumed within the wait (waited ${resume.waitedMs} ms)`);
    return resume.payload ?? null;
  },
});
