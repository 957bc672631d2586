import type { JsMsg } from "@nats-io/jetstream";
import { silentLogger } from "@flowmonkey/shared";
import { describe, expect, it, vi } from "vitest";
import { MAX_ENGINE_DELIVERIES, rejectionRecorder, retryLater } from "../../src/consumers/redelivery.js";
import type { Db } from "../../src/store/db.js";

/** The part of a JetStream message retryLater touches, recording what was done to it. */
function fakeMsg(deliveryCount: number, data = new Uint8Array([0x7b, 0x00, 0x7d])) {
  const done: string[] = [];
  const msg = {
    subject: "fm.flows.start.x",
    seq: 7,
    data,
    info: { deliveryCount },
    nak: (delay?: number) => void done.push(`nak ${delay}`),
    term: () => void done.push("term"),
  };
  return { msg: msg as unknown as JsMsg, done };
}

/** A Db that keeps the parameters of each query (only `query` is used). */
function fakeDb(fail = false) {
  const queries: unknown[][] = [];
  const db = {
    query: async (_text: string, params: unknown[] = []) => {
      if (fail) throw new Error("database down");
      queries.push(params);
      return { rows: [], rowCount: 1 };
    },
  };
  return { db: db as unknown as Db, queries };
}

describe("retryLater", () => {
  it("naks with a growing delay below the limit, and records nothing", async () => {
    const { db, queries } = fakeDb();
    const first = fakeMsg(1);
    retryLater(first.msg, new Error("boom"), silentLogger(), rejectionRecorder(db));
    const third = fakeMsg(3);
    retryLater(third.msg, new Error("boom"), silentLogger(), rejectionRecorder(db));
    expect([first.done, third.done]).toEqual([["nak 500"], ["nak 2000"]]);
    expect(queries).toEqual([]);
  });

  it("at the limit, records a storable INTERNAL rejection with an excerpt, then terminates", async () => {
    const { db, queries } = fakeDb();
    const { msg, done } = fakeMsg(MAX_ENGINE_DELIVERIES);
    retryLater(msg, new Error("unsupported Unicode escape sequence"), silentLogger(), rejectionRecorder(db));
    await vi.waitFor(() => expect(done).toEqual(["term"]));
    const rows = JSON.parse(queries[0]![0] as string) as unknown;
    expect(rows).toEqual([
      {
        subject: "fm.flows.start.x",
        code: "INTERNAL",
        reason: `given up after ${MAX_ENGINE_DELIVERIES} deliveries: unsupported Unicode escape sequence`,
        // The raw NUL byte is escaped: the row can be stored.
        excerpt: "{\\u0000}",
      },
    ]);
  });

  it("terminates even when the record cannot be written", async () => {
    const { db } = fakeDb(true);
    const { msg, done } = fakeMsg(MAX_ENGINE_DELIVERIES + 2);
    retryLater(msg, new Error("boom"), silentLogger(), rejectionRecorder(db));
    await vi.waitFor(() => expect(done).toEqual(["term"]));
  });
});
