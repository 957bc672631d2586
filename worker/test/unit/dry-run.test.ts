import type { BlobStore } from "@flowmonkey/shared";
import type { KvEntry } from "@nats-io/kv";
import { describe, expect, it } from "vitest";
import type { CheckpointKv } from "../../src/plumbing/checkpoints.js";
import { copyOnWriteBlobs, copyOnWriteKv, type DryRunEffect } from "../../src/runner/dry-run.js";

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array | undefined) => (b ? new TextDecoder().decode(b) : undefined);

/** A bucket in memory that records every write it receives: a dry run must cause none. */
function realKv(initial: Record<string, string>) {
  const writes: string[] = [];
  const kv: CheckpointKv = {
    get: async (key) => (key in initial ? ({ key, operation: "PUT", value: bytes(initial[key]!) } as unknown as KvEntry) : null),
    put: async (key) => (writes.push(`put ${key}`), 1),
    delete: async (key) => void writes.push(`delete ${key}`),
  };
  return { kv, writes };
}

describe("dry-run checkpoints (task replay)", () => {
  it("reads the real checkpoint until the run writes, and never writes the real bucket", async () => {
    const real = realKv({ "e.s": "saved by the pool" });
    const effects: DryRunEffect[] = [];
    const kv = copyOnWriteKv(real.kv, (e) => effects.push(e));

    expect(text((await kv.get("e.s"))?.value)).toBe("saved by the pool");
    await kv.put("e.s", bytes("saved by the replay"));
    expect(text((await kv.get("e.s"))?.value)).toBe("saved by the replay");
    await kv.delete("e.s");
    expect(await kv.get("e.s")).toBeNull();

    expect(real.writes).toEqual([]);
    expect(effects).toEqual([{ kind: "checkpoint.save", key: "e.s" }, { kind: "checkpoint.clear", key: "e.s" }]);
  });

  it("keeps blob writes in memory and reads the rest from the real bucket", async () => {
    const writes: string[] = [];
    const real: BlobStore = {
      bucket: "fm_blobs",
      put: async (name) => (writes.push(name), 1),
      get: async (name) => (name === "ctx" ? bytes("context") : undefined),
      has: async (name) => name === "ctx",
      delete: async (name) => void writes.push(`delete ${name}`),
    };
    const blobs = copyOnWriteBlobs(real);
    expect(text(await blobs.get("ctx"))).toBe("context");
    await blobs.put("cp", bytes("big checkpoint"));
    expect(text(await blobs.get("cp"))).toBe("big checkpoint");
    await blobs.delete("ctx");
    expect(await blobs.has("ctx")).toBe(false);
    expect(writes).toEqual([]);
  });
});
