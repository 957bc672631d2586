/**
 * Provisioning against a real nats-server: the checkpoint retention is a setting, applied to a
 * bucket that already exists (kvm.create() alone would keep the old TTL), and left alone when
 * the caller does not set it (`flowmonkey nats init` must not undo an engine's setting).
 */
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { describe, expect, it } from "vitest";
import { createNames, DEFAULT_CHECKPOINT_TTL_MS, provisionMesh } from "@flowmonkey/shared";
import { uniquePrefix, useNatsServer } from "../../../test/support/nats.js";

const nats = useNatsServer();
const HOUR = 3600_000;

describe("checkpoint retention", () => {
  it("is 7 days by default, follows the setting on an existing bucket, and stays when unset", async () => {
    const names = createNames(uniquePrefix());
    const nc = await connect({ servers: nats.url });
    try {
      const jsm = await jetstreamManager(nc);
      const ttlMs = async () => (await jsm.streams.info(`KV_${names.buckets.checkpoints}`)).config.max_age / 1e6;
      await provisionMesh(nc, names, { heartbeatTimeoutMs: 5000 });
      expect(await ttlMs()).toBe(DEFAULT_CHECKPOINT_TTL_MS);
      await provisionMesh(nc, names, { heartbeatTimeoutMs: 5000, checkpointTtlMs: 2 * HOUR });
      expect(await ttlMs()).toBe(2 * HOUR);
      await provisionMesh(nc, names, { heartbeatTimeoutMs: 5000 });
      expect(await ttlMs()).toBe(2 * HOUR);
    } finally {
      await nc.close();
    }
  });
});
