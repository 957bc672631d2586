import { describe, expect, it } from "vitest";
import { startPausableLoop } from "../../src/consumers/pausable-loop.js";
import type { PullLoop } from "../../src/consumers/pull-loop.js";

/** A start() whose calls fail as `failing` says; counts the loops running. */
function fakeStarts(failing: (call: number) => boolean) {
  const state = { calls: 0, running: 0, errors: [] as unknown[] };
  const start = async (): Promise<PullLoop> => {
    state.calls++;
    if (failing(state.calls)) throw new Error(`JetStream API request timed out (call ${state.calls})`);
    state.running++;
    return { stop: async () => void state.running-- };
  };
  return { state, start };
}

describe("pausable loop (the intake under backpressure)", () => {
  it("pauses and resumes, one loop at a time", async () => {
    const { state, start } = fakeStarts(() => false);
    const loop = await startPausableLoop(start);
    await Promise.all([loop.pause(), loop.pause()]);
    expect(state.running).toBe(0);
    await Promise.all([loop.resume(), loop.resume()]);
    expect([state.running, state.calls]).toEqual([1, 2]);
    await loop.stop();
    await loop.resume(); // stopped stays stopped
    expect(state.running).toBe(0);
  });

  it("keeps trying a resume whose start fails (a reconnect), and never rejects", async () => {
    const { state, start } = fakeStarts((call) => call === 2); // the first resume's start fails once
    const errors: unknown[] = [];
    const loop = await startPausableLoop(start, (err) => errors.push(err));
    await loop.pause();
    await expect(loop.resume()).resolves.toBeUndefined();
    expect(state.running).toBe(1);
    expect(errors).toHaveLength(1);
    await loop.stop();
  });

  it("gives up retrying when paused again meanwhile", async () => {
    const { state, start } = fakeStarts((call) => call >= 2);
    const loop = await startPausableLoop(start);
    await loop.pause();
    const resuming = loop.resume();
    await loop.pause();
    await resuming;
    expect(state.running).toBe(0);
    await loop.stop();
  });
});
