import { z } from "zod";
import { defineHandler } from "../sdk/define-handler.js";
import { NonRetryableFailure, RetryableFailure } from "../sdk/failures.js";

const Input = z.object({
  url: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }).describe("an http or https URL"),
  method: z
    .string()
    .regex(/^[A-Za-z]+$/)
    .transform((m) => m.toUpperCase())
    .default("GET")
    .describe("the HTTP method, any case (default GET)"),
  headers: z.record(z.string(), z.string()).optional().describe("request headers"),
  body: z.unknown().optional().describe("a string is sent as it is; anything else as JSON (with content-type application/json unless set)"),
  timeoutMs: z.number().int().positive().max(2 ** 31 - 1).optional().describe("no response within this many milliseconds is a retryable TIMEOUT failure"),
});

/**
 * One HTTP request with the global fetch. Any status is a successful step — flows branch on
 * `status` — while a request that got no response at all is a retryable failure. The task's
 * AbortSignal cancels the request on task timeout and worker shutdown.
 */
export const httpRequest = defineHandler({
  type: "http-request",
  version: "1",
  input: Input,
  docs: {
    summary: "Makes one HTTP request. Any status is a successful step (branch on `status` with `when`); no response at all is a retryable failure (UNAVAILABLE, TIMEOUT). Redirects are followed.",
    output: "`status`, `headers` (lower-case names) and `body` (parsed when the response is JSON, else text)",
    example: {
      input: { url: "https://api.example.com/orders", method: "POST", body: { sku: "X1", qty: 2 } },
      output: { status: 201, headers: { "content-type": "application/json" }, body: { orderId: "A-17" } },
    },
  },
  async execute(ctx) {
    const { url, method, timeoutMs } = ctx.input;
    const headers = new Headers(ctx.input.headers);
    let body: string | undefined;
    if (ctx.input.body !== undefined) {
      if (method === "GET" || method === "HEAD") throw new NonRetryableFailure("INVALID_INPUT", `a ${method} request cannot have a body`);
      body = typeof ctx.input.body === "string" ? ctx.input.body : JSON.stringify(ctx.input.body);
      if (typeof ctx.input.body !== "string" && !headers.has("content-type")) headers.set("content-type", "application/json");
    }
    const ownTimeout = timeoutMs === undefined ? undefined : AbortSignal.timeout(timeoutMs);
    const signal = ownTimeout ? AbortSignal.any([ctx.signal, ownTimeout]) : ctx.signal;

    let response: Response;
    let text: string;
    try {
      response = await fetch(url, { method, headers, body, signal, redirect: "follow" });
      text = await response.text();
    } catch (cause) {
      if (ctx.signal.aborted) throw ctx.signal.reason;
      if (ownTimeout?.aborted) throw new RetryableFailure("TIMEOUT", `${method} ${url}: no response within ${timeoutMs} ms`, { cause });
      const reason = cause instanceof Error && cause.cause instanceof Error ? cause.cause.message : String(cause);
      throw new RetryableFailure("UNAVAILABLE", `${method} ${url} failed: ${reason}`, { cause });
    }
    return { status: response.status, headers: Object.fromEntries(response.headers), body: parseBody(text, response.headers) };
  },
});

function parseBody(text: string, headers: Headers): unknown {
  const type = headers.get("content-type") ?? "";
  if (!/[/+]json\b/i.test(type) || text === "") return text;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    // Says JSON but is not: hand over the text rather than fail a request that did succeed.
    return text;
  }
}
