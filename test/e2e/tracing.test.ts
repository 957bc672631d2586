/**
 * One trace across three processes: the built gateway, engine and worker binaries run as child
 * processes with OTEL_EXPORTER_OTLP_ENDPOINT pointing at an OTLP/HTTP receiver in this test.
 * A flow started over HTTP yields one trace in which the gateway's start span is the parent of
 * the engine's execution span, whose dispatch span is the parent of the worker's run span,
 * whose result the engine applies in a span of the same trace — linked through the
 * `traceparent` NATS header and the task's metadata.traceparent.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import { createServer as createNetServer, type AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { uniquePrefix, useNatsServer } from "../support/nats.js";
import { useTestDatabase } from "../support/postgres.js";
import { waitFor } from "../support/wait.js";

const nats = useNatsServer();
const pg = useTestDatabase();
const main = (pkg: string) => fileURLToPath(new URL(`../../${pkg}/dist/main.js`, import.meta.url));

interface ReceivedSpan {
  service: string;
  name: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
}

/** A minimal OTLP/HTTP (JSON) trace receiver: every span posted to /v1/traces, with its service name. */
async function startReceiver(): Promise<{ url: string; spans: ReceivedSpan[]; server: Server }> {
  const spans: ReceivedSpan[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as {
        resourceSpans: Array<{ resource: { attributes: Array<{ key: string; value: { stringValue?: string } }> }; scopeSpans: Array<{ spans: Array<Omit<ReceivedSpan, "service">> }> }>;
      };
      for (const rs of body.resourceSpans ?? []) {
        const service = rs.resource.attributes.find((a) => a.key === "service.name")?.value.stringValue ?? "?";
        for (const ss of rs.scopeSpans) for (const s of ss.spans) spans.push({ service, name: s.name, traceId: s.traceId, spanId: s.spanId, parentSpanId: s.parentSpanId ?? "" });
      }
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, spans, server };
}

async function freePort(): Promise<number> {
  const s = createNetServer().listen(0, "127.0.0.1");
  await once(s, "listening");
  const { port } = s.address() as AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

const children: ChildProcess[] = [];
afterAll(async () => {
  for (const child of children) {
    if (child.exitCode === null) {
      child.kill("SIGTERM");
      await once(child, "exit");
    }
  }
});

describe("tracing", () => {
  it("one trace spans the gateway, the engine and the worker", async () => {
    const receiver = await startReceiver();
    try {
      const port = await freePort();
      const env = {
        ...process.env,
        NATS_URL: nats.url,
        FM_PREFIX: uniquePrefix(),
        DATABASE_URL: pg.url,
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_BSP_SCHEDULE_DELAY: "100",
        FM_HTTP_PORT: String(port),
        FM_HANDLERS: "echo",
        LOG_LEVEL: "warn",
      };
      const start = (pkg: string) => {
        const child = spawn(process.execPath, [main(pkg)], { env, stdio: ["ignore", "ignore", "inherit"] });
        children.push(child);
        return child;
      };
      start("engine");
      start("worker");
      start("gateway");
      const base = `http://127.0.0.1:${port}`;
      await waitFor(() => fetch(`${base}/readyz`).then((r) => r.ok), { timeoutMs: 20_000, message: "the gateway and engine to be ready" });
      const put = await fetch(`${base}/v1/flows`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ id: "traced", steps: [{ id: "hello", handler: "echo", input: { hi: 1 } }] }),
      });
      expect(put.ok).toBe(true);
      const started = (await (
        await fetch(`${base}/v1/flows/traced/executions`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" })
      ).json()) as { executionId: string };
      await waitFor(
        async () => ((await (await fetch(`${base}/v1/executions/${started.executionId}`)).json()) as { status: string }).status === "completed",
        { timeoutMs: 20_000, message: "the traced execution to complete" },
      );

      const named = (service: string, name: string) => receiver.spans.find((s) => s.service === service && s.name === name);
      const spans = await waitFor(
        () => {
          const found = {
            start: named("flowmonkey-gateway", "flowmonkey.start"),
            execution: named("flowmonkey-engine", "flowmonkey.execution.start"),
            dispatch: named("flowmonkey-engine", "flowmonkey.dispatch"),
            run: named("flowmonkey-worker", "flowmonkey.task.run"),
            apply: named("flowmonkey-engine", "flowmonkey.result.apply"),
          };
          return Object.values(found).every(Boolean) ? (found as Record<keyof typeof found, ReceivedSpan>) : undefined;
        },
        { timeoutMs: 15_000, message: "spans from all three processes" },
      );
      console.log(`[tracing] trace ${spans.start.traceId}: ${receiver.spans.length} spans from ${[...new Set(receiver.spans.map((s) => s.service))].join(", ")}`);
      expect(new Set(Object.values(spans).map((s) => s.traceId)).size).toBe(1);
      expect(spans.execution.parentSpanId).toBe(spans.start.spanId);
      expect(spans.dispatch.parentSpanId).toBe(spans.execution.spanId);
      expect(spans.run.parentSpanId).toBe(spans.dispatch.spanId);
      expect(spans.apply.parentSpanId).toBe(spans.run.spanId);
    } finally {
      receiver.server.close();
    }
  });
});
