/**
 * The engine's worker directory against a real nats-server (the one FM_NATS_SERVER picks: CI runs
 * this file on 2.15.3 and on 2.9.10). On 2.11+ the workers bucket leaves a delete marker when an
 * entry expires, and the directory takes the server's word for who is gone: its own clock, even
 * one far off the server's, decides nothing. On 2.9 it judges entries by age, as it must.
 */
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import { describe, expect, it } from "vitest";
import { createLogger, createNames, encode, ensureWorkersBucket, listWorkers, serverAtLeast, serverVersionOf, WORKER_ENTRY_TTL_MS, WORKER_KEYS, WORKER_MARKER_TTL_MS, type WorkerEntry } from "@flowmonkey/shared";
import { watchWorkerDirectory } from "../../src/regions/worker-directory.js";
import { uniquePrefix, useNatsServer } from "../../../test/support/nats.js";
import { waitFor } from "../../../test/support/wait.js";

const nats = useNatsServer();
const log = createLogger({ name: "worker-directory-test", level: "silent" });
const MINUTE = 60_000;

const entry = (workerId: string): WorkerEntry => ({
  workerId,
  region: "r1",
  handlers: ["echo"],
  capabilities: [],
  capabilityPools: true,
  concurrency: 4,
  inFlight: 0,
  version: "test",
  host: "test",
  startedAt: new Date().toISOString(),
});

/** A workers bucket whose entries expire after `ttlMs`, and the server's version. */
async function workersBucket(ttlMs: number) {
  const nc = await connect({ servers: nats.url });
  const jsm = await jetstreamManager(nc);
  const kvm = new Kvm(nc);
  const names = createNames(uniquePrefix());
  const bucket = names.buckets.workers;
  const markers = await ensureWorkersBucket(jsm, kvm, bucket, { ttlMs, replicas: 1 });
  return { nc, names, kv: await kvm.open(bucket), markers, current: serverAtLeast(serverVersionOf(nc), [2, 11, 0]) };
}

describe("worker directory", () => {
  it("drops a worker whose entry expired: told by the server on 2.11+, judged by age before", async () => {
    const { nc, kv, markers, current } = await workersBucket(2000);
    try {
      expect(markers).toBe(current);
      // A clock that stands still: on 2.11+ only the server's marker can end this worker.
      let clock = Date.now();
      const directory = await watchWorkerDirectory(kv, log, () => clock);
      expect(directory.markers).toBe(markers);
      await kv.put(WORKER_KEYS.key("r1", "w1"), encode(entry("w1")));
      await waitFor(() => directory.serves("r1", "echo"), { message: "the worker's entry seen" });
      if (markers) {
        await waitFor(() => !directory.serves("r1", "echo"), { timeoutMs: 20_000, message: "the expired entry's delete marker seen" });
        expect(directory.regionsServing("echo")).toEqual([]);
      } else {
        clock += WORKER_ENTRY_TTL_MS + 1000;
        expect(directory.serves("r1", "echo")).toBe(false);
      }
      await directory.stop();
    } finally {
      await nc.close();
    }
  });

  it("on 2.11+, an engine clock ten minutes ahead of the server still sees live workers", async (ctx) => {
    const { nc, kv, markers, current } = await workersBucket(WORKER_ENTRY_TTL_MS);
    try {
      if (!current) ctx.skip("nats-server before 2.11 has no delete markers: the directory must use its clock");
      expect(markers).toBe(true);
      const directory = await watchWorkerDirectory(kv, log, () => Date.now() + 10 * MINUTE);
      await kv.put(WORKER_KEYS.key("r1", "w2"), encode(entry("w2")));
      await waitFor(() => directory.serves("r1", "echo"), { message: "a fresh entry live despite the skewed clock" });
      expect(directory.workers("r1", "echo").map((w) => w.workerId)).toEqual(["w2"]);
      // A worker that stops deletes its entry: gone at once, markers or not.
      await kv.delete(WORKER_KEYS.key("r1", "w2"));
      await waitFor(() => !directory.serves("r1", "echo"), { message: "the deleted entry gone" });
      await directory.stop();
    } finally {
      await nc.close();
    }
  });

  it("counts an entry only under its own region's key: a worker cannot announce one for another region", async () => {
    const { nc, names, kv } = await workersBucket(WORKER_ENTRY_TTL_MS);
    try {
      const directory = await watchWorkerDirectory(kv, log);
      // Written by a worker of r2 (its permissions allow r2.* keys only) claiming to serve in r1; and a pre-region key.
      await kv.put(WORKER_KEYS.key("r2", "forged"), encode(entry("forged")));
      await kv.put("legacy", encode(entry("legacy")));
      await kv.put(WORKER_KEYS.key("r1", "w3"), encode(entry("w3")));
      await waitFor(() => directory.serves("r1", "echo"), { message: "the worker under its own key seen" });
      expect(directory.workers("r1", "echo").map((w) => w.workerId)).toEqual(["w3"]);
      expect(directory.regionsServing("echo")).toEqual(["r1"]);
      const listed = await listWorkers(nc, names, log);
      expect(listed.workers.map((w) => w.workerId)).toEqual(["w3"]);
      await directory.stop();
    } finally {
      await nc.close();
    }
  });

  it("gives a bucket made before markers existed its markers once the server has them", async () => {
    const nc = await connect({ servers: nats.url });
    try {
      const jsm = await jetstreamManager(nc);
      const kvm = new Kvm(nc);
      const bucket = `${uniquePrefix()}_workers`;
      // As an engine before this version (or on 2.9) made it.
      await kvm.create(bucket, { history: 1, ttl: WORKER_ENTRY_TTL_MS, replicas: 1 });
      const markers = await ensureWorkersBucket(jsm, kvm, bucket, { ttlMs: WORKER_ENTRY_TTL_MS, replicas: 1 });
      expect(markers).toBe(serverAtLeast(serverVersionOf(nc), [2, 11, 0]));
      const config = (await jsm.streams.info(`KV_${bucket}`)).config;
      expect(config.max_age).toBe(WORKER_ENTRY_TTL_MS * 1e6);
      expect(config.subject_delete_marker_ttl ?? 0).toBe(markers ? WORKER_MARKER_TTL_MS * 1e6 : 0);
      expect((await kvm.open(bucket).then((kv) => kv.status())).markerTTL > 0).toBe(markers);
    } finally {
      await nc.close();
    }
  });
});
