import { describe, expect, it } from "vitest";
import { regionTopology } from "@flowmonkey/shared";
import type { RegionLoad } from "../../src/regions/region-load.js";
import { choosePool, type LiveWorker } from "../../src/regions/pool-choice.js";
import { RegionRouter, type RouterOptions } from "../../src/regions/router.js";
import type { WorkerDirectory } from "../../src/regions/worker-directory.js";

const US = "us-east-1";
const EU = "eu-west-1";
const AP = "ap-south-1";
const topology = regionTopology({ hubDomain: "hub", regionDomains: { [US]: "hub", [EU]: EU, [AP]: AP } });

const loads = (table: Record<string, number>): RegionLoad => ({
  of: (region, handler) => table[`${region}/${handler}`],
  refreshed: async () => undefined,
  stop: async () => undefined,
});
/** region → [handler, capabilities, inFlight?][] of live workers. */
const workers = (table: Record<string, Array<[string, string[], number?]>>): WorkerDirectory => ({
  known: true,
  markers: true,
  serves: (region, handler, require = []) => (table[region] ?? []).some(([h, caps]) => h === handler && require.every((c) => caps.includes(c))),
  regionsServing: (handler) => Object.keys(table).filter((region) => (table[region] ?? []).some(([h]) => h === handler)),
  workers: (region, handler) =>
    (table[region] ?? []).flatMap(([h, capabilities, inFlight = 0], i) => (h === handler ? [{ workerId: `${region}-${i}`, capabilities, inFlight, capabilityPools: true }] : [])),
  stop: async () => undefined,
});
const everywhere = workers({ [US]: [["echo", []]], [EU]: [["echo", []]], [AP]: [["echo", ["gpu"]]] });

function router(o: Partial<RouterOptions> = {}, now = () => 0) {
  return new RegionRouter({ residency: { gdpr: [EU], asia_or_eu: [AP, EU] }, topology, directory: everywhere, busyMargin: 10, now, ...o });
}
const task = (region: string, sealed = false) => ({ region, handler: "echo", sealed });
const regionsOf = (plan: ReturnType<RegionRouter["plan"]>) => (plan.ok ? plan.regions : plan.error.code);

describe("RegionRouter", () => {
  it("keeps a task in its affinity region first, with every other region as failover", () => {
    expect(regionsOf(router().plan(task(US), {}))).toEqual([US, EU, AP]);
  });

  it("never plans a region outside a residency rule, whatever the affinity", () => {
    expect(regionsOf(router().plan(task(US), { residency: "gdpr" }))).toEqual([EU]);
    expect(regionsOf(router().plan(task(US), { residency: "gdpr", pinned: true }))).toEqual([EU]);
    expect(regionsOf(router().plan(task(EU), { residency: "asia_or_eu" }))).toEqual([EU, AP]);
  });

  it("holds a task whose residency rule is unknown rather than send it anywhere", () => {
    expect(regionsOf(router().plan(task(US), { residency: "hipaa" }))).toBe("RESIDENCY_UNKNOWN");
  });

  it("moves an unpinned task to the least busy allowed region only past the margin", () => {
    const busyEu = router({ load: loads({ [`${EU}/echo`]: 25, [`${AP}/echo`]: 2 }) });
    expect(regionsOf(busyEu.plan(task(EU), { residency: "asia_or_eu" }))).toEqual([AP, EU]);
    const slightlyBusy = router({ load: loads({ [`${EU}/echo`]: 8, [`${AP}/echo`]: 2 }) });
    expect(regionsOf(slightlyBusy.plan(task(EU), { residency: "asia_or_eu" }))).toEqual([EU, AP]);
  });

  it("does not move a pinned task for load, only for failover", () => {
    const busyEu = router({ load: loads({ [`${EU}/echo`]: 500 }) });
    expect(regionsOf(busyEu.plan(task(EU), { pinned: true }))).toEqual([EU, US, AP]);
  });

  it("orders failover regions that serve the handler before those that do not", () => {
    const onlyAp = router({ directory: workers({ [AP]: [["echo", []]] }) });
    expect(regionsOf(onlyAp.plan(task(US), { pinned: true }))).toEqual([US, AP, EU]);
  });

  it("routes a task that requires capabilities only where a live worker with them serves its handler", () => {
    expect(regionsOf(router().plan(task(US), { require: ["gpu"] }))).toEqual([AP]);
    expect(regionsOf(router().plan(task(US), { require: ["tpu"] }))).toBe("CAPABILITY_UNAVAILABLE");
    expect(regionsOf(router().plan(task(US), { require: ["gpu"], residency: "gdpr" }))).toBe("CAPABILITY_UNAVAILABLE");
  });

  it("keeps a task with sealed secrets in the region they were sealed for", () => {
    expect(regionsOf(router().plan(task(US, true), {}))).toEqual([US]);
    expect(regionsOf(router().plan(task(US, true), { residency: "gdpr" }))).toBe("REGION_UNAVAILABLE");
  });

  it("tries a region that just gave no responders last, until that wears off", () => {
    let t = 0;
    const r = router({ unreachableForMs: 1000 }, () => t);
    r.markUnreachable(US);
    expect(regionsOf(r.plan(task(US), {}))).toEqual([EU, AP, US]);
    t = 1001;
    expect(regionsOf(r.plan(task(US), {}))).toEqual([US, EU, AP]);
  });

  it("on a single server routes only by residency (no failover, no balancing)", () => {
    const single = router({ topology: undefined });
    expect(regionsOf(single.plan(task(US), {}))).toEqual([US]);
    expect(regionsOf(single.plan(task(US), { residency: "asia_or_eu" }))).toEqual([AP, EU]);
  });
});

describe("choosePool", () => {
  const w = (capabilities: string[], inFlight = 0, workerId = capabilities.join("+") || "plain"): LiveWorker => ({ workerId, capabilities, inFlight, capabilityPools: true });
  const old = (capabilities: string[]): LiveWorker => ({ ...w(capabilities), workerId: `old-${capabilities.join("+")}`, capabilityPools: false });

  it.each<[string, LiveWorker[], string[] | undefined, string[] | undefined]>([
    ["nothing required: the plain pool", [w([])], undefined, []],
    ["nothing required, even with no worker", [], [], []],
    ["no live worker offers it", [w([]), w(["avx512"])], ["gpu"], undefined],
    ["the one worker that offers it: its full set", [w([]), w(["fp16", "gpu"])], ["gpu"], ["fp16", "gpu"]],
    ["the smallest superset wins", [w(["fp16", "gpu", "nvlink"]), w(["gpu"], 9), w(["fp16", "gpu"])], ["gpu"], ["gpu"]],
    ["every required capability must be offered", [w(["gpu"]), w(["fp16", "gpu"])], ["fp16", "gpu"], ["fp16", "gpu"]],
    ["ties of size: fewest tasks in flight (summed over the pool's workers)", [w(["a", "gpu"], 1), w(["a", "gpu"], 1, "x"), w(["b", "gpu"], 1)], ["gpu"], ["b", "gpu"]],
    ["ties of size and load: by name", [w(["b", "gpu"]), w(["a", "gpu"])], ["gpu"], ["a", "gpu"]],
    ["an entry's capabilities are sorted and de-duplicated into the pool's name", [w(["gpu", "fp16", "gpu"])], ["gpu"], ["fp16", "gpu"]],
    ["an entry with a capability that cannot be a token is ignored", [w(["gpu", "a.b"]), w(["gpu", "z"])], ["gpu"], ["gpu", "z"]],
    ["only a worker from before capability pools offers it: its plain pool, as before", [w([]), old(["gpu"])], ["gpu"], []],
    ["a current worker's pool wins over an older worker's plain pool", [old(["gpu"]), w(["fp16", "gpu"])], ["gpu"], ["fp16", "gpu"]],
  ])("%s", (_what, live, require, pool) => {
    expect(choosePool(live, require)).toEqual(pool);
  });

  it("the router plans only regions with such a pool, and names it per region", () => {
    const r = router({ directory: workers({ [US]: [["echo", []]], [EU]: [["echo", ["fp16", "gpu"]], ["echo", ["gpu"]]], [AP]: [["echo", ["fp16", "gpu"]]] }) });
    expect(regionsOf(r.plan(task(US), { require: ["gpu"] }))).toEqual([EU, AP]);
    expect(r.poolFor(EU, "echo", ["gpu"])).toEqual(["gpu"]);
    expect(r.poolFor(AP, "echo", ["gpu"])).toEqual(["fp16", "gpu"]);
    expect(r.poolFor(US, "echo", ["gpu"])).toBeUndefined();
    expect(r.poolFor(US, "echo", [])).toEqual([]);
  });
});
