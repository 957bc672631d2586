/**
 * SSE fan-out: N clients on one execution's event stream; one progress update published on
 * NATS; the time until every client has received it. Raw node:http clients (no pool limit),
 * so the measurement is the gateway's fan-out, not a client library's queueing.
 */
import { request, Agent, type ClientRequest } from "node:http";

export interface FanOutResult {
  subscribers: number;
  connectMs: number;
  /** Publish → the first and the last of the N clients saw the update. */
  firstMs: number;
  p50Ms: number;
  p99Ms: number;
  allMs: number;
}

export async function measureSseFanOut(options: { url: string; subscribers: number; marker: string; publish: () => void; timeoutMs?: number }): Promise<FanOutResult> {
  const agent = new Agent({ keepAlive: false, maxSockets: Infinity });
  const requests: ClientRequest[] = [];
  const seen: number[] = [];
  let publishedAt = 0;
  let onAll: (() => void) | undefined;
  const allSeen = new Promise<void>((resolve) => (onAll = resolve));
  const connectStarted = performance.now();
  let connected = 0;
  const allConnected = new Promise<void>((resolve, reject) => {
    for (let i = 0; i < options.subscribers; i++) {
      let buffer = "";
      let got = false;
      const req = request(options.url, { agent, headers: { accept: "text/event-stream" } }, (res) => {
        if (res.statusCode !== 200) return reject(new Error(`SSE client ${i}: status ${res.statusCode}`));
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          // The first event (the snapshot) means the stream's subscriptions are in place.
          if (buffer === "" && ++connected === options.subscribers) resolve();
          buffer += chunk;
          if (!got && publishedAt > 0 && buffer.includes(options.marker)) {
            got = true;
            seen.push(performance.now() - publishedAt);
            if (seen.length === options.subscribers) onAll?.();
          }
          if (buffer.length > 65_536 && !got) buffer = buffer.slice(-1024);
        });
      });
      req.on("error", reject);
      req.end();
      requests.push(req);
    }
  });
  const timeout = (what: string) =>
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`SSE fan-out: timed out waiting for ${what} (${seen.length}/${options.subscribers} saw it, ${connected} connected)`)), options.timeoutMs ?? 60_000).unref());
  try {
    await Promise.race([allConnected, timeout("connections")]);
    const connectMs = performance.now() - connectStarted;
    publishedAt = performance.now();
    options.publish();
    await Promise.race([allSeen, timeout("the update")]);
    const sorted = [...seen].sort((a, b) => a - b);
    const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
    return { subscribers: options.subscribers, connectMs, firstMs: sorted[0]!, p50Ms: at(0.5), p99Ms: at(0.99), allMs: sorted[sorted.length - 1]! };
  } finally {
    for (const r of requests) r.destroy();
    agent.destroy();
  }
}
