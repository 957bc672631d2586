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
      resumeToken: ResumeToken.optional().describe("the token that resumes it; default a random one (shown by `flowmonkey status` and executions.get, sent in the `waiting` event)"),
      timeoutMs: z.number().int().positive().optional().describe("fail with WAIT_TIMEOUT after this many milliseconds"),
      waitUntil: z.iso.datetime({ offset: true }).optional().describe("fail with WAIT_TIMEOUT at this time (ISO 8601 with offset)"),
      event: EventName.optional().describe("also resume on an event of this name (POST /v1/events/<name>, or published on the events subject)"),
      filter: z.string().max(4096).optional().describe("JSONata over `{name, data, executionId, stepId, at}`: only an event it is true for resumes (needs `event`)"),
      reason: z.string().max(512).optional().describe("why it waits, shown to whoever resumes it"),
    })
    .strict()
    .refine((i) => i.filter === undefined || i.event !== undefined, { message: "filter needs an event", path: ["filter"] }),
  docs: {
    summary: "Parks the step without holding a worker until it is resumed by its token (`flowmonkey resume`, POST /v1/resume/<token>, the dashboard) or by an event; fails with WAIT_TIMEOUT when its time passes first (add `onFailure: continue` to go on without it).",
    output: "the resume payload (an event's data)",
    example: { input: { event: "payment.settled", filter: "data.orderId = 'A-17'", timeoutMs: 86400000 }, output: { orderId: "A-17", amount: 42 } },
  },
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
