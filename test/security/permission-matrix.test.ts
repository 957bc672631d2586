/**
 * Every permission line of the shipped configs, tried with the role's real certificate: for each
 * `allow` line of the gateway, the hub region's worker (hub-accounts.inc) and a leaf region's
 * worker (leaf-<region>.conf), one action the line allows (not refused) and one a holder of that
 * line might try that no line allows (refused). The matrix must name exactly the lines the files
 * hold, so a grant added to a config without its two tries fails here. The file prints the table.
 */
import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { PermissionViolationError, type NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNames, openBlobStoreLazily, openRegionBlobStore, provisionMesh, provisionRegion, STEP_KEYS } from "@flowmonkey/shared";
import { createProgressState } from "../../gateway/src/http/progress-state.js";
import { HUB_REGION, ROLES, startTopology, type Topology } from "../support/topology.js";
import { testCerts } from "../support/tls.js";

const CONFIG_DIR = resolve(import.meta.dirname, "../../nats-config");
const EU = "eu-west-1";
const AP = "ap-south-1";
const names = createNames("fm");

type Kind = "publish" | "subscribe";
/** One permission line: something it allows, and something next to it that nothing allows. */
interface Line {
  allowed: string;
  forbidden: string;
}
type Matrix = Record<Kind, Record<string, Line>>;

/** The allow or deny lists of one user of a shipped config file, as written. */
function shippedLists(file: string, user: string, which: "allow" | "deny"): Record<Kind, string[]> {
  const text = readFileSync(resolve(CONFIG_DIR, file), "utf8").replace(/#.*$/gm, "");
  const at = text.indexOf(`user: ${user}\n`);
  if (at < 0) throw new Error(`${file} has no user ${user}`);
  const block = text.slice(at, text.indexOf("\n      }\n", at));
  const list = (kind: Kind) => {
    const m = new RegExp(`${kind}: \\{ ${which}: \\[([^\\]]*)\\]`).exec(block);
    return m ? [...m[1]!.matchAll(/"([^"]+)"/g)].map((q) => q[1]!) : [];
  };
  return { publish: list("publish"), subscribe: list("subscribe") };
}
const shippedGrants = (file: string, user: string) => shippedLists(file, user, "allow");
const shippedDenies = (file: string, user: string) => shippedLists(file, user, "deny");

/**
 * A subject a pattern should cover: each wildcard filled in (`*` one token, `>` two). A `*` or
 * `>` inside a token is filled in too: the server reads it as a literal character, so a line
 * like `KV_fm_*` covers nothing real, and its try then shows it.
 */
const concrete = (pattern: string) => pattern.replace(/\.>$/, ".x1.x2").replaceAll("*", "x1").replaceAll(">", "x1");

const GATEWAY: Matrix = {
  publish: {
    "fm.api.>": { allowed: "fm.api.executions.list", forbidden: "fm.dlq.us-east-1.echo" },
    "fm.flows.start.>": { allowed: "fm.flows.start.bench3", forbidden: names.subjects.task(HUB_REGION, "echo", "normal") },
    "fm.events.>": { allowed: "fm.events.order.paid", forbidden: names.subjects.results(HUB_REGION) },
    "$JS.API.INFO": { allowed: "$JS.API.INFO", forbidden: "$JS.API.STREAM.CREATE.GATEWAY_MADE" },
    "$JS.API.STREAM.INFO.>": { allowed: "$JS.API.STREAM.INFO.FM_TASKS", forbidden: "$JS.API.STREAM.PURGE.FM_TASKS" },
    "$JS.API.CONSUMER.INFO.>": { allowed: "$JS.API.CONSUMER.INFO.FM_RESULTS.engine_results", forbidden: "$JS.API.CONSUMER.DELETE.FM_RESULTS.engine_results" },
    "$JS.API.CONSUMER.LIST.>": { allowed: "$JS.API.CONSUMER.LIST.FM_TASKS", forbidden: "$JS.API.CONSUMER.MSG.NEXT.FM_RESULTS.engine_results" },
    "$JS.*.API.STREAM.INFO.>": { allowed: `$JS.${EU}.API.STREAM.INFO.FM_TASKS`, forbidden: `$JS.${EU}.API.STREAM.DELETE.FM_TASKS` },
    "$JS.*.API.CONSUMER.INFO.>": { allowed: `$JS.${EU}.API.CONSUMER.INFO.FM_TASKS.pool_${EU}_echo_normal`, forbidden: `$JS.${EU}.API.CONSUMER.DELETE.FM_TASKS.pool_${EU}_echo_normal` },
    "$JS.*.API.CONSUMER.LIST.>": { allowed: `$JS.${EU}.API.CONSUMER.LIST.FM_TASKS`, forbidden: `$JS.${EU}.API.CONSUMER.MSG.NEXT.FM_TASKS.pool_${EU}_echo_normal` },
    "$JS.API.STREAM.MSG.GET.KV_fm_workers": { allowed: "$JS.API.STREAM.MSG.GET.KV_fm_workers", forbidden: "$JS.API.STREAM.MSG.GET.KV_fm_checkpoints" },
    "$JS.API.DIRECT.GET.KV_fm_workers.>": { allowed: "$JS.API.DIRECT.GET.KV_fm_workers.$KV.fm_workers.w1", forbidden: "$JS.API.DIRECT.GET.KV_fm_checkpoints.$KV.fm_checkpoints.e1.s1" },
    "$JS.API.CONSUMER.CREATE.KV_fm_workers.>": { allowed: "$JS.API.CONSUMER.CREATE.KV_fm_workers.w.$KV.fm_workers.>", forbidden: "$JS.API.CONSUMER.CREATE.KV_fm_checkpoints.w.$KV.fm_checkpoints.>" },
    "$JS.API.CONSUMER.CREATE.KV_fm_workers": { allowed: "$JS.API.CONSUMER.CREATE.KV_fm_workers", forbidden: "$JS.API.CONSUMER.CREATE.FM_RESULTS" },
    // Stored progress, for a live view that opens after a step reported (progress-state.ts).
    "$JS.API.STREAM.MSG.GET.KV_fm_progress": { allowed: "$JS.API.STREAM.MSG.GET.KV_fm_progress", forbidden: "$JS.API.STREAM.MSG.DELETE.KV_fm_progress" },
    "$JS.API.DIRECT.GET.KV_fm_progress.>": { allowed: "$JS.API.DIRECT.GET.KV_fm_progress.$KV.fm_progress.e1.s1", forbidden: "$KV.fm_progress.e1.s1" },
    "$JS.API.CONSUMER.CREATE.KV_fm_progress.>": { allowed: "$JS.API.CONSUMER.CREATE.KV_fm_progress.k.$KV.fm_progress.e1.*", forbidden: "$JS.API.CONSUMER.DELETE.KV_fm_workers.k" },
    "$JS.FC.>": { allowed: "$JS.FC.KV_fm_workers.x", forbidden: "$JS.ACK.FM_RESULTS.engine_results.1.1.1.1.1" },
  },
  subscribe: {
    "_INBOX.>": { allowed: "_INBOX.gateway.>", forbidden: ">" },
    "fm.progress.>": { allowed: "fm.progress.>", forbidden: "fm.tasks.>" },
    "fm.exec.>": { allowed: "fm.exec.>", forbidden: "fm.results.>" },
  },
};

/** A region's worker; `api` is where it reaches the hub's buckets ($JS.API on the hub, $JS.hub.API on a leaf). */
function workerMatrix(region: string, other: string, api: "$JS.API" | "$JS.hub.API"): Matrix {
  const blobs = names.regionBuckets.blobs(region);
  const otherBlobs = names.regionBuckets.blobs(other);
  const publish: Record<string, Line> = {
    [`fm.results.${region}`]: { allowed: `fm.results.${region}`, forbidden: `fm.results.${other}` },
    // Live progress under its region only: not another region's, nor the engine's form.
    [`fm.progress.~${region}.>`]: { allowed: `fm.progress.~${region}.e1.s1`, forbidden: `fm.progress.~${other}.e1.s1` },
    // Its region's events only: a trusted event, or another region's, resumes waits it must not.
    [`fm.events.~${region}.>`]: { allowed: `fm.events.~${region}.order.paid`, forbidden: "fm.events.order.paid" },
    "$JS.API.INFO": { allowed: "$JS.API.INFO", forbidden: "$JS.API.STREAM.LIST" },
    "$JS.API.STREAM.INFO.FM_TASKS": { allowed: "$JS.API.STREAM.INFO.FM_TASKS", forbidden: "$JS.API.STREAM.PURGE.FM_TASKS" },
    "$JS.API.CONSUMER.INFO.FM_TASKS.*": { allowed: `$JS.API.CONSUMER.INFO.FM_TASKS.pool_${region}_echo_normal`, forbidden: "$JS.API.CONSUMER.INFO.FM_RESULTS.engine_results" },
    [`$JS.API.CONSUMER.CREATE.FM_TASKS.*.fm.tasks.${region}.>`]: {
      allowed: `$JS.API.CONSUMER.CREATE.FM_TASKS.pool_x.fm.tasks.${region}.echo.normal`,
      forbidden: `$JS.API.CONSUMER.CREATE.FM_TASKS.pool_x.fm.tasks.${other}.echo.normal`,
    },
    "$JS.API.CONSUMER.DELETE.FM_TASKS.*": { allowed: "$JS.API.CONSUMER.DELETE.FM_TASKS.no_such_pool", forbidden: "$JS.API.CONSUMER.DELETE.FM_FLOWS.engine_intake" },
    "$JS.API.CONSUMER.MSG.NEXT.FM_TASKS.*": { allowed: `$JS.API.CONSUMER.MSG.NEXT.FM_TASKS.pool_${region}_echo_normal`, forbidden: "$JS.API.CONSUMER.MSG.NEXT.FM_FLOWS.engine_intake" },
    "$JS.ACK.FM_TASKS.>": { allowed: "$JS.ACK.FM_TASKS.pool.1.1.1.1.1", forbidden: "$JS.ACK.FM_FLOWS.engine_intake.1.1.1.1.1" },
    [`${api}.STREAM.INFO.KV_fm_workers`]: { allowed: `${api}.STREAM.INFO.KV_fm_workers`, forbidden: `${api}.STREAM.DELETE.KV_fm_workers` },
    [`${api}.STREAM.MSG.GET.KV_fm_workers`]: { allowed: `${api}.STREAM.MSG.GET.KV_fm_workers`, forbidden: `${api}.STREAM.MSG.DELETE.KV_fm_workers` },
    [`${api}.DIRECT.GET.KV_fm_workers`]: { allowed: `${api}.DIRECT.GET.KV_fm_workers`, forbidden: `${api}.STREAM.UPDATE.KV_fm_workers` },
    [`${api}.DIRECT.GET.KV_fm_workers.>`]: { allowed: `${api}.DIRECT.GET.KV_fm_workers.$KV.fm_workers.w1`, forbidden: `${api}.DIRECT.GET.OBJ_fm_blobs.$O.fm_blobs.M.x` },
    // Progress and checkpoints: this region's keys only (STEP_KEYS), and progress is written, never read.
    [`${api}.STREAM.INFO.KV_fm_progress`]: { allowed: `${api}.STREAM.INFO.KV_fm_progress`, forbidden: `${api}.STREAM.PURGE.KV_fm_progress` },
    [`$KV.fm_progress.${region}.>`]: { allowed: `$KV.fm_progress.${region}.e1.s1`, forbidden: `$KV.fm_progress.${other}.e1.s1` },
    [`${api}.STREAM.INFO.KV_fm_checkpoints`]: { allowed: `${api}.STREAM.INFO.KV_fm_checkpoints`, forbidden: `${api}.STREAM.DELETE.KV_fm_checkpoints` },
    [`${api}.DIRECT.GET.KV_fm_checkpoints.$KV.fm_checkpoints.${region}.>`]: {
      allowed: `${api}.DIRECT.GET.KV_fm_checkpoints.$KV.fm_checkpoints.${region}.e1.s1`,
      forbidden: `${api}.DIRECT.GET.KV_fm_checkpoints.$KV.fm_checkpoints.${other}.e1.s1`,
    },
    [`$KV.fm_checkpoints.${region}.>`]: { allowed: `$KV.fm_checkpoints.${region}.e1.s1`, forbidden: `$KV.fm_checkpoints.${other}.e1.s1` },
    [`$KV.fm_workers.${region}.>`]: { allowed: `$KV.fm_workers.${region}.matrix-test`, forbidden: `$KV.fm_workers.${other}.matrix-test` },
    // Blobs: this region's bucket only (fm_blobs_<region>); not another region's, nor the shared one from before.
    [`${api}.STREAM.INFO.OBJ_${blobs}`]: { allowed: `${api}.STREAM.INFO.OBJ_${blobs}`, forbidden: `${api}.STREAM.INFO.OBJ_${otherBlobs}` },
    [`${api}.STREAM.MSG.GET.OBJ_${blobs}`]: { allowed: `${api}.STREAM.MSG.GET.OBJ_${blobs}`, forbidden: `${api}.STREAM.MSG.GET.OBJ_fm_blobs` },
    [`${api}.CONSUMER.CREATE.OBJ_${blobs}`]: { allowed: `${api}.CONSUMER.CREATE.OBJ_${blobs}`, forbidden: `${api}.CONSUMER.CREATE.OBJ_${otherBlobs}` },
    [`${api}.CONSUMER.CREATE.OBJ_${blobs}.>`]: { allowed: `${api}.CONSUMER.CREATE.OBJ_${blobs}.c1.$O.${blobs}.C.x`, forbidden: `${api}.CONSUMER.CREATE.OBJ_${otherBlobs}.c1.$O.${otherBlobs}.C.x` },
    [`${api}.CONSUMER.DELETE.OBJ_${blobs}.>`]: { allowed: `${api}.CONSUMER.DELETE.OBJ_${blobs}.c1`, forbidden: `${api}.CONSUMER.DELETE.FM_RESULTS.engine_results` },
    [`$O.${blobs}.>`]: { allowed: `$O.${blobs}.C.x`, forbidden: `$O.${otherBlobs}.C.x` },
    "$JS.FC.>": { allowed: `$JS.FC.OBJ_${blobs}.x`, forbidden: "$JS.ACK.FM_RESULTS.engine_results.1.1.1.1.1" },
  };
  if (api === "$JS.hub.API") {
    // A leaf's worker reaches the hub's JetStream, and through it the hub's buckets, by domain.
    Object.assign(publish, {
      "$JS.hub.API.INFO": { allowed: "$JS.hub.API.INFO", forbidden: `$JS.${other}.API.INFO` },
      [`$JS.hub.API.$KV.fm_workers.${region}.>`]: { allowed: `$JS.hub.API.$KV.fm_workers.${region}.matrix-test`, forbidden: `$JS.hub.API.$KV.fm_workers.${other}.matrix-test` },
      [`$JS.hub.API.$KV.fm_progress.${region}.>`]: { allowed: `$JS.hub.API.$KV.fm_progress.${region}.e1.s1`, forbidden: `$JS.hub.API.$KV.fm_progress.${other}.e1.s1` },
      [`$JS.hub.API.$KV.fm_checkpoints.${region}.>`]: { allowed: `$JS.hub.API.$KV.fm_checkpoints.${region}.e1.s1`, forbidden: `$JS.hub.API.$KV.fm_checkpoints.${other}.e1.s1` },
      [`$JS.hub.API.$O.${blobs}.>`]: { allowed: `$JS.hub.API.$O.${blobs}.C.x`, forbidden: `$JS.hub.API.$O.${otherBlobs}.C.x` },
    });
  }
  return {
    publish,
    subscribe: {
      "_INBOX.>": { allowed: "_INBOX.worker.>", forbidden: ">" },
      [`fm.tasks.${region}.>`]: { allowed: `fm.tasks.${region}.>`, forbidden: `fm.tasks.${other}.>` },
      "$JS.EVENT.ADVISORY.CONSUMER.MSG_NAKED.FM_TASKS.>": { allowed: "$JS.EVENT.ADVISORY.CONSUMER.MSG_NAKED.FM_TASKS.>", forbidden: "$JS.EVENT.ADVISORY.>" },
      "fm.exec.*.*.cancelled": { allowed: "fm.exec.*.*.cancelled", forbidden: "fm.exec.>" },
      "fm.exec.*.*.failed": { allowed: "fm.exec.*.*.failed", forbidden: "fm.exec.*.*.completed" },
    },
  };
}

interface Subject {
  label: string;
  file: string;
  user: string;
  matrix: Matrix;
  connect(): Promise<NatsConnection>;
}

let topology: Topology;
const tried: Array<{ who: string; kind: Kind; line: string; subject: string; expected: "allowed" | "refused"; seen: "allowed" | "refused" }> = [];

beforeAll(async () => {
  topology = await startTopology([EU, AP]);
  // What the engine provisions, so allowed requests meet real streams and buckets.
  const engine = await topology.connectAs(topology.hub, ROLES.engine);
  await provisionMesh(engine, names, { heartbeatTimeoutMs: 60_000 });
  await provisionRegion(engine, names, EU, EU, { heartbeatTimeoutMs: 60_000 });
}, 60_000);

afterAll(async () => {
  await topology?.stop();
  const ok = tried.filter((t) => t.seen === t.expected).length;
  console.log(
    `Permission matrix: ${tried.length} tries (${tried.filter((t) => t.expected === "allowed").length} allowed, ${tried.filter((t) => t.expected === "refused").length} refused), ${ok} as expected\n` +
      tried.map((t) => `  ${t.who.padEnd(18)} ${t.kind.padEnd(9)} ${t.subject.padEnd(78)} ${t.expected.padEnd(8)} ${t.seen}`).join("\n"),
  );
});

function isPermissionViolation(err: unknown): boolean {
  for (let e: unknown = err, i = 0; e instanceof Error && i < 8; e = e.cause, i++) if (e instanceof PermissionViolationError) return true;
  return false;
}

/**
 * Whether the server refuses the action. A publish goes as a request: a refusal comes back as a
 * permissions violation within a round trip; anything else (a reply, an API error, no
 * responders, silence) means the server let it through. A subscription the server refuses is
 * closed with the violation before the PONG of the flush that follows it.
 */
async function seen(nc: NatsConnection, kind: Kind, subject: string): Promise<"allowed" | "refused"> {
  if (kind === "subscribe") {
    const sub = nc.subscribe(subject);
    let refusal: unknown;
    void sub.closed.then((err) => (refusal = err));
    await nc.flush();
    await Promise.resolve();
    const refused = sub.isClosed() && (refusal === undefined || isPermissionViolation(refusal));
    if (!sub.isClosed()) sub.unsubscribe();
    return refused ? "refused" : "allowed";
  }
  // A pull request that asks for nothing it must wait for; other APIs get an empty config.
  const body = subject.includes(".MSG.NEXT.") ? JSON.stringify({ batch: 1, no_wait: true }) : "{}";
  return nc.request(subject, body, { timeout: 1500 }).then(
    () => "allowed" as const,
    (err: unknown) => (isPermissionViolation(err) ? ("refused" as const) : ("allowed" as const)),
  );
}

const subjects: Subject[] = [
  { label: "gateway", file: "hub-accounts.inc", user: ROLES.gateway, matrix: GATEWAY, connect: () => topology.connectAs(topology.hub, ROLES.gateway) },
  {
    label: `worker ${HUB_REGION}`,
    file: "hub-accounts.inc",
    user: ROLES.worker(HUB_REGION),
    matrix: workerMatrix(HUB_REGION, EU, "$JS.API"),
    connect: () => topology.connectAs(topology.hub, ROLES.worker(HUB_REGION)),
  },
  {
    label: `worker ${EU}`,
    file: `leaf-${EU}.conf`,
    user: ROLES.worker(EU),
    matrix: workerMatrix(EU, AP, "$JS.hub.API"),
    connect: () => topology.connectAs(topology.leaves[EU]!.server, ROLES.worker(EU)),
  },
];

describe.each(subjects)("the $label role's permission lines", (s) => {
  it("the matrix names exactly the lines the shipped config grants", () => {
    const grants = shippedGrants(s.file, s.user);
    for (const kind of ["publish", "subscribe"] as const) expect(Object.keys(s.matrix[kind]).sort()).toEqual([...grants[kind]].sort());
  });

  it.each(["publish", "subscribe"] as const)("each %s line allows its action and refuses its neighbour", async (kind) => {
    const nc = await s.connect();
    const wrong: string[] = [];
    for (const [line, { allowed, forbidden }] of Object.entries(s.matrix[kind])) {
      for (const [subject, expected] of [
        [allowed, "allowed"],
        [forbidden, "refused"],
      ] as const) {
        const outcome = await seen(nc, kind, subject);
        tried.push({ who: s.label, kind, line, subject, expected, seen: outcome });
        if (outcome !== expected) wrong.push(`${line}: ${subject} was ${outcome}, expected ${expected}`);
      }
    }
    expect(wrong).toEqual([]);
  }, 120_000);
});

it("the other leaf region's worker has the same lines with its own region", () => {
  const eu = shippedGrants(`leaf-${EU}.conf`, ROLES.worker(EU));
  const ap = shippedGrants(`leaf-${AP}.conf`, ROLES.worker(AP));
  for (const kind of ["publish", "subscribe"] as const) expect(ap[kind].map((l) => l.replaceAll(AP, EU))).toEqual(eu[kind]);
});

it("the gateway, under its role, catches a live view up with the progress workers stored", async () => {
  const worker = await topology.connectAs(topology.hub, ROLES.worker(HUB_REGION));
  const kv = await new Kvm(worker).open(names.buckets.progress);
  const progress = { executionId: "e-matrix", stepId: "s1", taskId: "t1", attempt: 1, percent: 40, message: "halfway", at: new Date().toISOString() };
  await kv.put(STEP_KEYS.key(HUB_REGION, "e-matrix", "s1"), JSON.stringify(progress));
  const gateway = await topology.connectAs(topology.hub, ROLES.gateway);
  const state = createProgressState(gateway, names.buckets.progress, pino({ level: "silent" }));
  expect(await state.latestOf("e-matrix")).toEqual([progress]);
  // The gateway reads; it does not write.
  expect(await seen(gateway, "publish", `$KV.fm_progress.${HUB_REGION}.e-matrix.s1`)).toBe("refused");
});

describe("checkpoints are kept per region", () => {
  it.each([
    ["the hub's worker", HUB_REGION, EU, () => topology.connectAs(topology.hub, ROLES.worker(HUB_REGION)), undefined],
    [`an ${EU} worker on its leaf`, EU, HUB_REGION, () => topology.connectAs(topology.leaves[EU]!.server, ROLES.worker(EU)), "hub"],
  ] as const)("%s saves and loads its region's checkpoints and cannot read or overwrite another region's", async (_who, own, other, connectWorker, domain) => {
    // Another region's worker left a checkpoint (written here as the engine, which may write any key).
    const engine = await new Kvm(await topology.connectAs(topology.hub, ROLES.engine)).open(names.buckets.checkpoints);
    await engine.put(STEP_KEYS.key(other, "e-carry", "s1"), JSON.stringify({ state: "theirs" }));
    const nc = await connectWorker();
    const kv = await new Kvm(domain ? jetstream(nc, { domain }) : nc).open(names.buckets.checkpoints, { allow_direct: true });
    await kv.put(STEP_KEYS.key(own, "e-carry", "s1"), JSON.stringify({ state: "mine" }));
    expect((await kv.get(STEP_KEYS.key(own, "e-carry", "s1")))?.json()).toEqual({ state: "mine" });
    await expect(kv.get(STEP_KEYS.key(other, "e-carry", "s1"))).rejects.toSatisfy(isPermissionViolation);
    await expect(kv.put(STEP_KEYS.key(other, "e-carry", "s1"), "{}")).rejects.toSatisfy(isPermissionViolation);
    expect((await engine.get(STEP_KEYS.key(other, "e-carry", "s1")))?.json()).toEqual({ state: "theirs" });
  });
});

describe("blobs are kept per region", () => {
  it.each([
    ["the hub's worker", HUB_REGION, EU, () => topology.connectAs(topology.hub, ROLES.worker(HUB_REGION)), undefined],
    [`an ${EU} worker on its leaf`, EU, HUB_REGION, () => topology.connectAs(topology.leaves[EU]!.server, ROLES.worker(EU)), "hub"],
  ] as const)("%s stores and reads its region's blobs and cannot read or write another region's", async (_who, own, other, connectWorker, domain) => {
    // The engine makes each region's bucket, and left a blob in the other region's.
    const engine = await topology.connectAs(topology.hub, ROLES.engine);
    const theirs = openRegionBlobStore(engine, names.regionBuckets.blobs(other), { create: true });
    await theirs.put("context/e-blob/theirs", new TextEncoder().encode('"theirs"'));
    await openRegionBlobStore(engine, names.regionBuckets.blobs(own), { create: true }).has("x");
    const nc = await connectWorker();
    const js = domain ? jetstream(nc, { domain }) : nc;
    const mine = openRegionBlobStore(js, names.regionBuckets.blobs(own));
    await mine.put("checkpoints/e-blob.s1", new TextEncoder().encode('"mine"'));
    expect(new TextDecoder().decode(await mine.get("checkpoints/e-blob.s1"))).toBe('"mine"');
    const elsewhere = openBlobStoreLazily(js, names.regionBuckets.blobs(other));
    await expect(elsewhere.get("context/e-blob/theirs")).rejects.toSatisfy(isPermissionViolation);
    await expect(elsewhere.put("context/e-blob/forged", new TextEncoder().encode("{}"))).rejects.toSatisfy(isPermissionViolation);
    expect(new TextDecoder().decode(await theirs.get("context/e-blob/theirs"))).toBe('"theirs"');
  });
});

describe("events and live progress are a region's own", () => {
  it.each([
    ["the hub's worker", HUB_REGION, EU, () => topology.connectAs(topology.hub, ROLES.worker(HUB_REGION))],
    [`an ${EU} worker on its leaf`, EU, HUB_REGION, () => topology.connectAs(topology.leaves[EU]!.server, ROLES.worker(EU))],
  ] as const)("%s stores its region's events and can publish neither another region's events or progress nor the trusted forms", async (who, own, other, connectWorker) => {
    const nc = await connectWorker();
    try {
      // Its own region's event reaches the hub's FM_EVENTS (the PubAck says stored).
      const ack = await jetstream(nc).publish(names.subjects.regionEvent(own, "order.paid"), JSON.stringify({ data: { who } }));
      expect(ack.stream).toBe(names.streams.events);
      const notItsOwn = [
        names.subjects.regionEvent(other, "order.paid"),
        names.subjects.event("order.paid"),
        names.subjects.regionProgress(other, "e1", "s1"),
        names.subjects.progress("e1", "s1"),
      ];
      for (const subject of notItsOwn) {
        const outcome = await seen(nc, "publish", subject);
        tried.push({ who, kind: "publish", line: "(events)", subject, expected: "refused", seen: outcome });
        expect(outcome, subject).toBe("refused");
      }
    } finally {
      await nc.close();
    }
  });
});

describe("a leaf's link and certificate", () => {
  const leafClient = () => {
    const { cert, key } = testCerts().server(`leaf-${EU}`);
    return connect({ servers: topology.hub.url, tls: { caFile: testCerts().ca, certFile: cert, keyFile: key }, noAsyncTraces: true });
  };

  it("used as a plain client at the hub, the leaf's certificate cannot forge, read or change what the engine owns", async () => {
    const nc = await leafClient();
    try {
      const refused: Array<[Kind, string]> = [
        ["publish", names.subjects.results(HUB_REGION)],
        ["publish", names.subjects.task(HUB_REGION, "echo", "normal")],
        ["publish", "fm.exec.bench3.e1.cancelled"],
        ["publish", "$JS.API.STREAM.DELETE.FM_RESULTS"],
        ["publish", "$JS.API.STREAM.PURGE.FM_FLOWS"],
        ["publish", "$JS.API.CONSUMER.MSG.NEXT.FM_RESULTS.engine_results"],
        ["publish", "$JS.API.CONSUMER.CREATE.FM_FLOWS.x.fm.flows.>"],
        ["publish", "$JS.API.STREAM.MSG.GET.FM_TASKS"],
        ["publish", `$KV.fm_checkpoints.${HUB_REGION}.e1.s1`],
        ["publish", `$JS.API.DIRECT.GET.KV_fm_checkpoints.$KV.fm_checkpoints.${AP}.e1.s1`],
        ["publish", `$O.${names.regionBuckets.blobs(HUB_REGION)}.C.x`],
        ["publish", `$JS.API.CONSUMER.CREATE.OBJ_${names.regionBuckets.blobs(AP)}.c1.$O.${names.regionBuckets.blobs(AP)}.C.x`],
        ["publish", `$O.${names.buckets.blobs}.C.x`],
        ["publish", `fm.events.~${HUB_REGION}.order.paid`],
        ["publish", "fm.progress.e1.s1"],
        ["publish", `fm.progress.~${AP}.e1.s1`],
        ["publish", `fm.events.~${AP}.order.paid`],
        ["subscribe", "fm.api.>"],
        ["subscribe", "fm.flows.>"],
        ["subscribe", "fm.results.>"],
        ["subscribe", `fm.tasks.${HUB_REGION}.>`],
        ["subscribe", "$JS.API.>"],
        ["subscribe", "$KV.>"],
      ];
      for (const [kind, subject] of refused) {
        const outcome = await seen(nc, kind, subject);
        tried.push({ who: `leaf-${EU} cert`, kind, line: "(deny)", subject, expected: "refused", seen: outcome });
        expect(outcome, `${kind} ${subject}`).toBe("refused");
      }
      // What its region's traffic needs is not refused.
      for (const [kind, subject] of [["publish", `fm.events.~${EU}.order.paid`], ["publish", `$KV.fm_checkpoints.${EU}.e1.s1`], ["publish", `$O.${names.regionBuckets.blobs(EU)}.C.x`], ["publish", `fm.progress.~${EU}.e1.s1`], ["subscribe", `fm.tasks.${EU}.>`]] as const) {
        const outcome = await seen(nc, kind, subject);
        tried.push({ who: `leaf-${EU} cert`, kind, line: "(needed)", subject, expected: "allowed", seen: outcome });
        expect(outcome, `${kind} ${subject}`).toBe("allowed");
      }
    } finally {
      await nc.close();
    }
  });

  it("each line of its deny lists refuses what it names (used as a plain client at the hub)", async () => {
    const denies = shippedDenies("hub-accounts.inc", `leaf-${EU}`);
    expect(denies.publish.length + denies.subscribe.length).toBeGreaterThan(100);
    const nc = await leafClient();
    try {
      const wrong: string[] = [];
      const outcomes = await Promise.all([
        ...denies.publish.map(async (line) => {
          const subject = concrete(line);
          // A request in the hub's own domain ($JS.hub.API.X) is mapped to $JS.API.X, and a refused
          // one is dropped without a permissions error; an allowed one always gets JetStream's answer.
          const outcome = line.startsWith("$JS.hub.API.")
            ? await nc.request(subject, "{}", { timeout: 1000 }).then(
                () => "allowed" as const,
                () => "refused" as const,
              )
            : await seen(nc, "publish", subject);
          return { kind: "publish" as const, line, subject, outcome };
        }),
        ...denies.subscribe.map(async (line) => ({ kind: "subscribe" as const, line, subject: line, outcome: await seen(nc, "subscribe", line) })),
      ]);
      for (const { kind, line, subject, outcome } of outcomes) {
        tried.push({ who: `leaf-${EU} cert`, kind, line, subject, expected: "refused", seen: outcome });
        if (outcome !== "refused") wrong.push(`${kind} ${subject} (${line}) was ${outcome}`);
      }
      expect(wrong).toEqual([]);
    } finally {
      await nc.close();
    }
  }, 60_000);

  it("the other leaf's link user has the same deny lines with the regions swapped", () => {
    const eu = shippedDenies("hub-accounts.inc", `leaf-${EU}`);
    const ap = shippedDenies("hub-accounts.inc", `leaf-${AP}`);
    const swap = (l: string) => l.replaceAll(AP, "<A>").replaceAll(EU, AP).replaceAll("<A>", EU);
    for (const kind of ["publish", "subscribe"] as const) expect(ap[kind].map(swap)).toEqual(eu[kind]);
  });

  it("does not carry another region's results or tasks from the leaf into the hub's streams, even for the leaf's engine role", async () => {
    // The leaf's own `engine` user may do anything on the leaf; the link is what stops it here.
    const local = jetstream(await topology.connectAs(topology.leaves[EU]!.server, ROLES.engine));
    for (const subject of [names.subjects.results(HUB_REGION), names.subjects.task(HUB_REGION, "echo", "normal")]) {
      // Without the deny, the hub's stream stores it and answers with a PubAck; with it, no
      // stream hears it (nats.js says "no responders" as "jetstream is not enabled").
      await expect(local.publish(subject, "{}", { timeout: 2000 }), subject).rejects.toThrow(/no responders|503|jetstream is not enabled/i);
    }
  });
});
