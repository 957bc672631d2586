/**
 * The monitoring files in compose/ without running them: Prometheus scrapes real compose
 * services on the ports their env opens, the Grafana dashboard and the KEDA ScaledObject query
 * only series the code registers, and Grafana is provisioned with what the dashboard refers to.
 */
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { z } from "zod";

const ROOT = resolve(import.meta.dirname, "..");
const COMPOSE_DIR = join(ROOT, "compose");
const read = (path: string) => readFileSync(join(COMPOSE_DIR, path), "utf8");

/** The files that define the exported series (prom-client constructors and the queue gauges). */
const METRIC_SOURCES = [
  "shared/src/metrics/queue-metrics.ts",
  "engine/src/metrics/engine-metrics.ts",
  "worker/src/metrics/worker-metrics.ts",
  "gateway/src/http/metrics.ts",
];

/** Series names the code registers: every `"fm_…"` string literal in the metric sources. */
function registeredMetrics(): Set<string> {
  const names = new Set<string>();
  for (const file of METRIC_SOURCES) {
    for (const m of readFileSync(join(ROOT, file), "utf8").matchAll(/["'](fm_[a-z0-9_]+)["']/g)) names.add(m[1]!);
  }
  return names;
}

/** The fm_ series a PromQL expression reads that the code does not register (a histogram's _bucket/_sum/_count count as the histogram). */
function unknownMetrics(expr: string, known: Set<string>): string[] {
  const used = [...expr.matchAll(/\b(fm_[a-z0-9_]+)/g)].map((m) => m[1]!);
  return used.filter((name) => !known.has(name) && !known.has(name.replace(/_(bucket|sum|count)$/, "")));
}

const Compose = z.object({
  services: z.record(
    z.string(),
    z.object({ image: z.string().optional(), environment: z.record(z.string(), z.string()).optional(), volumes: z.array(z.string()).optional() }),
  ),
});
const compose = Compose.parse(parse(read("docker-compose.yml"), { merge: true, maxAliasCount: 100 }));

const known = registeredMetrics();

describe("metric names", () => {
  it("finds the series the code registers, and flags one it does not", () => {
    for (const name of ["fm_queue_depth", "fm_queue_ack_pending", "fm_task_duration_seconds", "fm_executions", "fm_dlq_size", "fm_worker_utilization"]) {
      expect(known, name).toContain(name);
    }
    expect(unknownMetrics("rate(fm_task_duration_seconds_bucket[5m]) + fm_no_such_series", known)).toEqual(["fm_no_such_series"]);
  });
});

describe("compose/prometheus/prometheus.yml", () => {
  const Config = z.object({
    scrape_configs: z.array(z.object({ job_name: z.string(), metrics_path: z.string().optional(), static_configs: z.array(z.object({ targets: z.array(z.string()) })) })),
  });
  const config = Config.parse(parse(read("prometheus/prometheus.yml")));
  const targets = config.scrape_configs.flatMap((job) => job.static_configs.flatMap((s) => s.targets));

  /** The port a service of ours serves /metrics on, from its compose env: FM_METRICS_PORT, or the gateway's HTTP port. */
  const metricsPortOf = (service: string): string | undefined => {
    const env = compose.services[service]?.environment ?? {};
    return service === "gateway" ? env["FM_HTTP_PORT"] : env["FM_METRICS_PORT"];
  };

  it("scrapes only compose services, on the port their env serves metrics on, bound beyond loopback", () => {
    expect(targets.length).toBeGreaterThan(0);
    for (const target of targets) {
      const [host = "", port] = target.split(":");
      expect(Object.keys(compose.services), target).toContain(host);
      expect(metricsPortOf(host), `${target}: the service's metrics port`).toBe(port);
      if (host !== "gateway") expect(compose.services[host]!.environment?.["FM_METRICS_HOST"], `${host}: FM_METRICS_HOST`).toBe("0.0.0.0");
    }
  });

  it("scrapes the engine, the gateway and every worker", () => {
    const ours = Object.keys(compose.services).filter((name) => name === "engine" || name === "gateway" || name.startsWith("worker-"));
    expect(targets.map((t) => t.split(":")[0]).sort()).toEqual(ours.sort());
  });

  it("is mounted into the prometheus service", () => {
    expect(compose.services["prometheus"]?.volumes).toContain("./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro");
  });
});

describe("compose/grafana", () => {
  const Dashboard = z.object({
    uid: z.string(),
    panels: z.array(z.object({ title: z.string(), datasource: z.object({ uid: z.string() }), targets: z.array(z.object({ expr: z.string() })).min(1) })).min(1),
  });
  const dashboard = Dashboard.parse(JSON.parse(read("grafana/flowmonkey-dashboard.json")));
  const datasources = z.object({ datasources: z.array(z.object({ uid: z.string(), url: z.string() })) }).parse(parse(read("grafana/provisioning/datasources/prometheus.yml")));

  it("queries only series the code registers", () => {
    for (const panel of dashboard.panels) {
      for (const { expr } of panel.targets) expect(unknownMetrics(expr, known), `${panel.title}: ${expr}`).toEqual([]);
    }
  });

  it("covers queue depth, ack-pending, task duration, executions, DLQ, utilization and dispatch latency", () => {
    const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr)).join("\n");
    for (const name of ["fm_queue_depth", "fm_queue_ack_pending", "fm_task_duration_seconds_bucket", "fm_executions", "fm_dlq_size", "fm_worker_utilization", "fm_task_dispatch_latency_seconds_bucket"]) {
      expect(exprs).toContain(name);
    }
  });

  it("uses the provisioned datasource, which points at the compose prometheus service", () => {
    const uids = datasources.datasources.map((d) => d.uid);
    for (const panel of dashboard.panels) expect(uids, panel.title).toContain(panel.datasource.uid);
    for (const d of datasources.datasources) expect(Object.keys(compose.services)).toContain(new URL(d.url).hostname);
  });

  it("mounts the dashboard where the dashboard provider reads it", () => {
    const provider = z.object({ providers: z.array(z.object({ options: z.object({ path: z.string() }) })) }).parse(parse(read("grafana/provisioning/dashboards/flowmonkey.yml")));
    const mounts = compose.services["grafana"]?.volumes ?? [];
    const path = provider.providers[0]!.options.path;
    expect(mounts.some((v) => v.startsWith("./grafana/flowmonkey-dashboard.json:") && v.split(":")[1]!.startsWith(`${path}/`))).toBe(true);
  });
});

describe("compose/keda/worker-scaledobject.yaml", () => {
  const ScaledObject = z.object({
    kind: z.literal("ScaledObject"),
    spec: z.object({
      scaleTargetRef: z.object({ name: z.string() }),
      triggers: z.array(z.object({ type: z.string(), metadata: z.record(z.string(), z.string()) })).min(1),
    }),
  });
  const scaled = ScaledObject.parse(parse(read("keda/worker-scaledobject.yaml")));

  it("scales on the pool's backlog plus its in-flight tasks, with series the code registers", () => {
    const trigger = scaled.spec.triggers.find((t) => t.type === "prometheus");
    const query = trigger?.metadata["query"] ?? "";
    expect(unknownMetrics(query, known)).toEqual([]);
    // Backlog alone reads ~0 while fast workers hold every task: the query must add ack-pending.
    expect(query).toContain("fm_queue_depth");
    expect(query).toContain("fm_queue_ack_pending");
    expect(Number(trigger?.metadata["threshold"])).toBeGreaterThan(0);
  });
});
