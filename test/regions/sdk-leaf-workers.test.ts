/**
 * The Python and Go workers in a leaf region, as a deployment runs them: a process connected to
 * the eu-west-1 leaf (nats-config/leaf-eu-west-1.conf) over mutual TLS, logged in by the
 * worker-eu-west-1 certificate (no password), with FM_HUB_DOMAIN=hub — its task pools and
 * results are the leaf's, its buckets (registry, progress, checkpoints) the hub's, reached
 * through the hub's domain within the role's permissions. A language whose toolchain is missing
 * is skipped with that message.
 */
import { execFile, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { Kvm } from "@nats-io/kv";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { listWorkers, silentLogger, STEP_KEYS } from "@flowmonkey/shared";
import { useTestDatabase } from "../support/postgres.js";
import { startProcessUntilReady } from "../support/ready-process.js";
import { startRegionMesh, type RegionMesh } from "../support/region-mesh.js";
import { testCerts } from "../support/tls.js";
import { ROLES, startTopology, type Topology } from "../support/topology.js";

const ROOT = resolve(import.meta.dirname, "../..");
const PYTHON = process.env["FM_PYTHON"] ?? join(ROOT, ".cache/py-venv/bin/python");
const GO = process.env["FM_GO"] ?? ["/usr/local/go/bin/go", "/usr/bin/go"].find((p) => existsSync(p));
const EU = "eu-west-1";
const LANGUAGES = [
  { lang: "python", missing: existsSync(PYTHON) ? undefined : `no Python venv at ${PYTHON} (bash .ci/run system)` },
  { lang: "go", missing: GO ? undefined : "no Go toolchain at /usr/local/go/bin/go (set FM_GO)" },
] as const;

const pg = useTestDatabase();
let topology: Topology;
let mesh: RegionMesh;
let dir: string;
let goBinary: string;
const children: ChildProcess[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "fm-sdk-leaf-"));
  if (GO) {
    goBinary = join(dir, "conformance-worker");
    await promisify(execFile)(GO, ["build", "-o", goBinary, "./cmd/flowmonkey-conformance-worker"], { cwd: join(ROOT, "sdks/go"), timeout: 240_000 });
  }
  topology = await startTopology([EU]);
  mesh = await startRegionMesh(topology, { databaseUrl: pg.url });
  await mesh.api.putFlow({
    id: "eu-sdk",
    steps: [
      { id: "shout", handler: "conf-shout", region: EU, input: { text: "{% input.text %}" } },
      { id: "count", handler: "conf-count", region: EU, dependsOn: ["shout"], input: { to: 3, pauseMs: 10 } },
    ],
    output: { shout: "{% steps.shout %}", count: "{% steps.count %}" },
  });
}, 300_000);

afterAll(async () => {
  for (const child of children) child.kill("SIGKILL");
  await mesh?.close();
  await topology?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe.each(LANGUAGES)("a $lang worker on the eu-west-1 leaf", ({ lang, missing }) => {
  if (missing) console.warn(`[sdk-leaf-workers] ${lang} skipped: ${missing}`);

  it.skipIf(missing !== undefined)("runs the region's steps over mutual TLS with its role's certificate; progress, checkpoints and its registry entry land at the hub", async () => {
    const env = {
      NATS_URL: topology.leaves[EU]!.server.url,
      FM_REGION: EU,
      FM_HUB_DOMAIN: "hub",
      FM_PREFIX: mesh.names.prefix,
      ...testCerts().clientEnv(ROLES.worker(EU)),
    };
    const worker =
      lang === "python"
        ? await startProcessUntilReady(PYTHON, ["-m", "flowmonkey", "--module", join(ROOT, "test/conformance/python-handlers.py"), "--region", EU], { ...env, PYTHONPATH: join(ROOT, "sdks/python") }, { started: (c) => children.push(c) })
        : await startProcessUntilReady(goBinary, ["--region", EU], env, { started: (c) => children.push(c) });
    try {
      const { executionId } = await mesh.api.start("eu-sdk", { input: { text: "hola" } });
      const done = await mesh.waitForStatus(executionId, "completed", 30_000);
      expect(done.output).toEqual({ shout: { text: "HOLA", lang }, count: { resumedFrom: 0, reached: 3 } });
      const hub = await topology.connectAs(topology.hub, ROLES.engine);
      const kvm = new Kvm(hub);
      // Written through the hub's domain from the leaf: the checkpoint of the counting step...
      const checkpoint = await (await kvm.open(mesh.names.buckets.checkpoints)).get(STEP_KEYS.key(EU, executionId, "count"));
      expect(checkpoint?.json()).toEqual({ state: { next: 3 } });
      // ...the shouting step's progress, and the worker's registry entry in its region.
      const progress = await (await kvm.open(mesh.names.buckets.progress)).get(STEP_KEYS.key(EU, executionId, "shout"));
      expect(progress?.json()).toMatchObject({ executionId, stepId: "shout", percent: 50 });
      const entries = (await listWorkers(hub, mesh.names, silentLogger())).workers.filter((w) => w.region === EU && w.handlers.includes("conf-count"));
      expect(entries.length).toBeGreaterThan(0);
    } finally {
      worker.kill("SIGTERM");
    }
  }, 120_000);
});
