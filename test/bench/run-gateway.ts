/**
 * `npm run bench:gateway`: the gateway's request rate for GET /v1/executions/:id and the start
 * endpoint against loopback, next to a bare Hono route returning a constant (same process, same
 * load generator, same run: the baseline is what HTTP alone costs here), and SSE fan-out to
 * 1,000 subscribers. Engine, worker and gateway run in this process on a fresh nats-server and
 * database (PostgreSQL, as the other benchmarks); autocannon drives the load.
 *
 * BENCH_GATEWAY_SECONDS (default 5), BENCH_GATEWAY_CONNECTIONS (default 32), BENCH_SSE_SUBSCRIBERS (default 1000).
 */
import { serve } from "@hono/node-server";
import { createApiClient, createLogger, createSubjects, encode } from "@flowmonkey/shared";
import { startNatsServer } from "@flowmonkey/shared/dev";
import { createEngine } from "@flowmonkey/engine";
import { createWorker } from "@flowmonkey/worker";
import { createGateway } from "@flowmonkey/gateway";
import { connect } from "@nats-io/transport-node";
import autocannon from "autocannon";
import { Hono } from "hono";
import type { AddressInfo } from "node:net";
import { cpus, loadavg } from "node:os";
import { createTestDatabase } from "../support/postgres.js";
import { measureSseFanOut } from "./gateway-sse.js";

const seconds = Number(process.env["BENCH_GATEWAY_SECONDS"] ?? 5);
const connections = Number(process.env["BENCH_GATEWAY_CONNECTIONS"] ?? 32);
const subscribers = Number(process.env["BENCH_SSE_SUBSCRIBERS"] ?? 1000);
const log = createLogger({ name: "bench", level: process.env["LOG_LEVEL"] ?? "warn" });
const say = (line: string) => process.stdout.write(`${line}\n`);

interface Load {
  label: string;
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
}

async function load(label: string, opts: autocannon.Options): Promise<Load> {
  const result = await autocannon({ connections, duration: seconds, ...opts });
  return { label, rps: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, non2xx: result.non2xx, errors: result.errors };
}

async function main(): Promise<void> {
  say(`gateway benchmark: ${seconds} s per run, ${connections} connections, ${cpus().length} CPUs, load ${loadavg().map((v) => v.toFixed(2)).join(" ")}`);
  const cleanups: Array<() => Promise<unknown>> = [];
  try {
    const nats = await startNatsServer();
    cleanups.push(() => nats.stop());
    const db = await createTestDatabase();
    cleanups.push(() => db.drop());
    const nc = await connect({ servers: nats.url, name: "bench-gateway" });
    cleanups.push(() => nc.close());
    const prefix = "benchgw";
    const engine = createEngine({ nc, log, prefix, databaseUrl: db.url });
    await engine.start();
    cleanups.push(() => engine.close());
    const worker = createWorker({ nc, log, prefix, region: "us-east-1", handlers: ["echo", "wait"], concurrency: 64, fetchExpiresMs: 1000 });
    await worker.start();
    cleanups.push(() => worker.close());
    const gateway = createGateway({ nc, log, prefix, port: 0, host: "127.0.0.1" });
    await gateway.start();
    cleanups.push(() => gateway.close());

    const api = createApiClient(nc, { prefix });
    await api.putFlow({ id: "hello", steps: [{ id: "say", handler: "echo", input: { text: "{% input.name %}" } }] });
    await api.putFlow({ id: "parked", steps: [{ id: "hold", handler: "wait", input: {} }] });
    const { executionId } = await api.start("hello", { input: { name: "bench" } });

    // The baseline: a bare Hono app on the same kind of server, answering a constant.
    const bare = new Hono();
    bare.get("/constant", (c) => c.json({ ok: true }));
    const bareServer = serve({ fetch: bare.fetch, port: 0, hostname: "127.0.0.1" });
    await new Promise<void>((resolve) => bareServer.once("listening", () => resolve()));
    cleanups.push(() => new Promise((resolve) => bareServer.close(() => resolve(undefined))));
    const bareUrl = `http://127.0.0.1:${(bareServer.address() as AddressInfo).port}`;

    const results: Load[] = [];
    results.push(await load("baseline: bare Hono GET /constant", { url: `${bareUrl}/constant` }));
    results.push(await load("GET /v1/executions/:id", { url: `${gateway.url}/v1/executions/${executionId}` }));
    results.push(
      await load("POST /v1/flows/hello/executions", {
        url: `${gateway.url}/v1/flows/hello/executions`,
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ input: { name: "load" } }),
      }),
    );
    say("");
    say("| route | requests/s | p50 ms | p99 ms | non-2xx | errors |");
    say("|---|---:|---:|---:|---:|---:|");
    for (const r of results) say(`| ${r.label} | ${Math.round(r.rps)} | ${r.p50} | ${r.p99} | ${r.non2xx} | ${r.errors} |`);

    // SSE: subscribers on a parked execution (no other events on it), then one progress update.
    const parked = await api.start("parked", { input: {} });
    const subjects = createSubjects(prefix);
    const marker = `fanout-${Date.now()}`;
    const fanOut = await measureSseFanOut({
      url: `${gateway.url}/v1/executions/${parked.executionId}/events`,
      subscribers,
      marker,
      publish: () => nc.publish(subjects.progress(parked.executionId, "hold"), encode({ executionId: parked.executionId, stepId: "hold", percent: 50, message: marker, at: new Date().toISOString() })),
    });
    say("");
    say(`SSE fan-out to ${fanOut.subscribers} subscribers of one execution (connect all: ${Math.round(fanOut.connectMs)} ms):`);
    say(`  publish → first ${fanOut.firstMs.toFixed(1)} ms, p50 ${fanOut.p50Ms.toFixed(1)} ms, p99 ${fanOut.p99Ms.toFixed(1)} ms, all ${fanOut.allMs.toFixed(1)} ms`);
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup().catch((err: unknown) => log.warn({ err }, "cleanup failed"));
  }
}

await main();
