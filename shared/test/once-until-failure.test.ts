import { describe, expect, it } from "vitest";
import { onceUntilFailure } from "../src/runtime/once-until-failure.js";

describe("onceUntilFailure", () => {
  it("loads once and shares the result with every later call", async () => {
    let loads = 0;
    const get = onceUntilFailure(async () => ++loads);
    expect(await Promise.all([get(), get()])).toEqual([1, 1]);
    expect(await get()).toBe(1);
    expect(loads).toBe(1);
  });

  it("forgets a failed load: the next call tries again", async () => {
    let loads = 0;
    const get = onceUntilFailure(async () => {
      loads++;
      if (loads === 1) throw new Error("not there yet");
      return "opened";
    });
    await expect(get()).rejects.toThrow("not there yet");
    expect(await get()).toBe("opened");
    expect(await get()).toBe("opened");
    expect(loads).toBe(2);
  });
});
