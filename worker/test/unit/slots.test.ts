import { describe, expect, it } from "vitest";
import { planFetches, type PoolView, Slots } from "../../src/runner/slots.js";
import { standingSize } from "../../src/runner/puller.js";

const idle = (outstanding = 0): PoolView => ({ outstanding, hungry: false, paused: false });
const hungry = (outstanding = 0): PoolView => ({ outstanding, hungry: true, paused: false });
const plan = (free: number, pools: PoolView[], start = 0, minBatch = 1) => planFetches({ free, pools, start, minBatch, maxOutstanding: 2 });

describe("planFetches", () => {
  it.each([
    ["nothing free", 0, [hungry(), idle()], []],
    ["idle pools hold no slot", 16, [idle(), idle(), idle()], []],
    ["a hungry pool gets everything", 16, [hungry(), idle(), idle()], [{ pool: 0, count: 16 }]],
    ["hungry pools split evenly", 9, [hungry(), hungry(), hungry()], [{ pool: 0, count: 3 }, { pool: 1, count: 3 }, { pool: 2, count: 3 }]],
    ["an idle pool with a fetch open gets nothing more", 8, [hungry(), idle(1)], [{ pool: 0, count: 8 }]],
    ["a paused pool gets nothing", 4, [{ outstanding: 0, hungry: true, paused: true }, hungry()], [{ pool: 1, count: 4 }]],
    ["a pool at its open-fetch limit gets nothing", 4, [hungry(2), hungry()], [{ pool: 1, count: 4 }]],
  ])("%s", (_what, free, pools, grants) => {
    expect(plan(free, pools).grants).toEqual(grants);
  });

  describe("standing fetches (a worker with room to spare)", () => {
    const standing = (free: number, pools: PoolView[], capacity = 16) =>
      planFetches({ free, pools, start: 0, minBatch: 1, maxOutstanding: 2, standing: 1, capacity }).grants;

    it("each idle lane keeps one slot asked for, best rank first", () => {
      const lanes: PoolView[] = [2, 1, 0].map((rank) => ({ outstanding: 0, hungry: false, paused: false, rank }));
      expect(standing(16, lanes)).toEqual([{ pool: 2, count: 1 }, { pool: 1, count: 1 }, { pool: 0, count: 1 }]);
    });

    it("not for a lane with a fetch open, a paused lane, or one served now; hungry lanes first", () => {
      // The hungry lane (no cap) takes every free slot: nothing is left to stand in the idle one.
      expect(standing(16, [idle(1), { outstanding: 0, hungry: false, paused: true }, hungry(), idle()])).toEqual([{ pool: 2, count: 16 }]);
      expect(standing(16, [{ outstanding: 0, hungry: true, paused: false, limit: 2 }, idle()])).toEqual([
        { pool: 0, count: 2 },
        { pool: 1, count: 1 },
      ]);
      expect(standing(16, [idle(1), idle()])).toEqual([{ pool: 1, count: 1 }]);
    });

    it("never below half the capacity: hungry lanes keep the slots they may need", () => {
      expect(standing(9, [idle(), idle(), idle()])).toEqual([{ pool: 0, count: 1 }]);
      expect(standing(8, [idle(), idle()])).toEqual([]);
    });

    it("a worker with many slots per lane keeps more than one standing, so a trickle of tasks needs few pull requests", () => {
      expect(standingSize(16, 3)).toBe(1);
      expect(standingSize(8, 3)).toBe(0); // fewer than 4 slots per lane: doorbells only
      expect(standingSize(256, 3)).toBe(21);
      expect(standingSize(4096, 3)).toBe(32);
      expect(standingSize(256, 0)).toBe(0);
      // Every lane's standing fetch fits: together at most a quarter of the slots.
      for (const [capacity, lanes] of [[16, 3], [64, 6], [256, 3], [1000, 7]] as const) {
        const size = standingSize(capacity, lanes);
        const grants = planFetches({ free: capacity, pools: Array.from({ length: lanes }, () => idle()), start: 0, minBatch: 1, maxOutstanding: 2, standing: size, capacity }).grants;
        expect(grants).toHaveLength(size > 0 ? lanes : 0);
        expect(grants.reduce((n, g) => n + g.count, 0)).toBeLessThanOrEqual(capacity / 4);
      }
    });

    it("off (standing 0) leaves idle lanes empty", () => {
      expect(planFetches({ free: 16, pools: [idle(), idle()], start: 0, minBatch: 1, maxOutstanding: 2, standing: 0, capacity: 16 }).grants).toEqual([]);
    });
  });

  describe("priority lanes", () => {
    // A handler's three lanes.
    const lane = (rank: number, state: Partial<PoolView> = {}): PoolView => ({ outstanding: 0, hungry: false, paused: false, rank, ...state });

    it("idle lanes hold no slot", () => {
      expect(plan(8, [lane(0), lane(1), lane(2)]).grants).toEqual([]);
    });

    it("fewer slots than lanes: a low task is served when the lanes above are empty (no starvation)", () => {
      // 10 handlers × 3 lanes, one slot: only the low lane of the 7th handler has work.
      const lanes = Array.from({ length: 30 }, (_, i) => lane(i % 3, i === 20 ? { hungry: true, limit: 1 } : {}));
      for (let start = 0; start < 30; start++) expect(plan(1, lanes, start).grants).toEqual([{ pool: 20, count: 1 }]);
    });

    it("fewer slots than lanes with work: the slot goes high, then normal, then low", () => {
      const waiting = (rank: number) => lane(rank, { hungry: true, limit: 1 });
      expect(plan(1, [waiting(2), waiting(1), waiting(0)]).grants).toEqual([{ pool: 2, count: 1 }]);
      expect(plan(1, [waiting(2), waiting(1), lane(0)]).grants).toEqual([{ pool: 1, count: 1 }]);
      expect(plan(1, [waiting(2), lane(1), lane(0)]).grants).toEqual([{ pool: 0, count: 1 }]);
    });

    it("a hungry high lane is served before a hungry normal one, which keeps a one-task share", () => {
      expect(plan(8, [lane(1, { hungry: true }), lane(0, { hungry: true }), lane(2, { hungry: true })]).grants).toEqual([
        { pool: 1, count: 6 },
        { pool: 0, count: 1 },
        { pool: 2, count: 1 },
      ]);
    });

    it("with one free slot, a waiting high task takes it whatever the round-robin position", () => {
      for (let start = 0; start < 3; start++) {
        expect(plan(1, [lane(1, { hungry: true }), lane(2, { hungry: true }), lane(0, { hungry: true })], start).grants).toEqual([{ pool: 2, count: 1 }]);
      }
    });

    it("a lane that knows how many tasks wait asks for no more; the rest goes to the next rank", () => {
      // One high task known: a fetch of 1, not of every free slot (which it would hold until the fetch expires).
      expect(plan(8, [lane(1, { hungry: true }), lane(0, { hungry: true, limit: 1 })]).grants).toEqual([
        { pool: 1, count: 1 },
        { pool: 0, count: 7 },
      ]);
      expect(plan(8, [lane(1, { hungry: true }), lane(0, { hungry: true, limit: 3 })]).grants).toEqual([
        { pool: 1, count: 3 },
        { pool: 0, count: 5 },
      ]);
      expect(plan(8, [lane(0, { hungry: true, limit: 0 }), lane(1, { outstanding: 1 })]).grants).toEqual([]);
    });

    it("a low lane with a backlog gets the slots when nothing better waits", () => {
      expect(plan(6, [lane(0), lane(1, { outstanding: 1 }), lane(2, { hungry: true })]).grants).toEqual([{ pool: 2, count: 6 }]);
    });
  });

  it("never grants more than is free", () => {
    for (let free = 0; free <= 20; free++) {
      const total = plan(free, [hungry(), idle(), hungry(1), idle()]).grants.reduce((n, g) => n + g.count, 0);
      expect(total).toBeLessThanOrEqual(free);
    }
  });

  it("skips tiny extra fetches for a pool that already has one open", () => {
    expect(plan(2, [hungry(1)], 0, 4).grants).toEqual([]);
    expect(plan(5, [hungry(1)], 0, 4).grants).toEqual([{ pool: 0, count: 5 }]);
    expect(plan(2, [hungry(0)], 0, 4).grants).toEqual([{ pool: 0, count: 2 }]);
  });

  it("under scarcity, every pool gets its turn (round robin)", () => {
    const pools = [hungry(), hungry(), hungry()];
    const served: number[] = [];
    let start = 0;
    for (let i = 0; i < 6; i++) {
      const p = plan(1, pools, start);
      served.push(p.grants[0]!.pool);
      start = p.next;
    }
    expect(served).toEqual([0, 1, 2, 0, 1, 2]);
  });
});

describe("Slots", () => {
  it("keeps running + requested within capacity and resolves idle() when the last task finishes", async () => {
    const slots = new Slots(2);
    slots.reserve(2);
    expect(() => slots.reserve(1)).toThrow(/only 0 free/);
    slots.deliver();
    slots.unreserve(1);
    expect({ running: slots.running, requested: slots.requested, free: slots.free }).toEqual({ running: 1, requested: 0, free: 1 });
    let idle = false;
    const done = slots.idle().then(() => (idle = true));
    await Promise.resolve();
    expect(idle).toBe(false);
    slots.finish();
    await done;
    expect(idle).toBe(true);
  });
});
