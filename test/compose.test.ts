/**
 * compose/docker-compose.yml without a Docker engine: it parses, every file and build context
 * it names exists, every image target exists in the Dockerfile, every service command of ours is
 * a binary of the project (an npm bin whose source exists and that the image links onto PATH),
 * and the NATS services start the real nats-config files.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { parseDocument } from "yaml";
import { z } from "zod";

const ROOT = resolve(import.meta.dirname, "..");
const COMPOSE_DIR = join(ROOT, "compose");
const COMPOSE_FILE = join(COMPOSE_DIR, "docker-compose.yml");

const Service = z.object({
  image: z.string().optional(),
  build: z.object({ context: z.string(), dockerfile: z.string(), target: z.string() }).optional(),
  /** Absent: the image's own (postgres). Ours and the NATS servers always say what they run. */
  command: z.array(z.string()).min(1).optional(),
  environment: z.record(z.string(), z.string()).optional(),
  volumes: z.array(z.string()).optional(),
  depends_on: z.record(z.string(), z.object({ condition: z.string() })).optional(),
});
const Compose = z.object({ services: z.record(z.string(), Service), volumes: z.record(z.string(), z.unknown().nullable()).optional() });

function loadCompose() {
  const doc = parseDocument(readFileSync(COMPOSE_FILE, "utf8"), { merge: true });
  expect(doc.errors).toEqual([]);
  return Compose.parse(doc.toJS({ maxAliasCount: 100 }));
}

/** Every npm bin of the workspaces: name → source file (dist/x.js ← src/x.ts). */
function projectBins(): Map<string, string> {
  const bins = new Map<string, string>();
  for (const pkg of ["engine", "worker", "gateway"]) {
    const manifest = z.object({ bin: z.record(z.string(), z.string()) }).parse(JSON.parse(readFileSync(join(ROOT, pkg, "package.json"), "utf8")));
    for (const [name, target] of Object.entries(manifest.bin)) bins.set(name, join(ROOT, pkg, target.replace(/^\.\/dist\//, "src/").replace(/\.js$/, ".ts")));
  }
  return bins;
}

describe("compose/docker-compose.yml", () => {
  const compose = loadCompose();
  const services = Object.entries(compose.services);

  it("has a 3-node hub, two leaf regions, postgres, the engine, the gateway, a worker per region, prometheus and grafana", () => {
    expect(Object.keys(compose.services).sort()).toEqual(
      ["engine", "gateway", "grafana", "hub-1", "hub-2", "hub-3", "leaf-ap-south-1", "leaf-eu-west-1", "postgres", "prometheus", "worker-ap-south-1", "worker-eu-west-1", "worker-us-east-1"].sort(),
    );
  });

  it("builds from contexts, Dockerfiles and targets that exist", () => {
    for (const [name, s] of services) {
      if (!s.build) continue;
      const context = resolve(COMPOSE_DIR, s.build.context);
      expect(existsSync(context), `${name}: build context ${context}`).toBe(true);
      const dockerfile = join(context, s.build.dockerfile);
      expect(existsSync(dockerfile), `${name}: ${dockerfile}`).toBe(true);
      const stages = [...readFileSync(dockerfile, "utf8").matchAll(/^FROM\s+\S+\s+AS\s+(\S+)/gim)].map((m) => m[1]);
      expect(stages, `${name}: target ${s.build.target}`).toContain(s.build.target);
      // Everything the Dockerfile copies from the context exists.
      for (const m of readFileSync(dockerfile, "utf8").matchAll(/^COPY\s+(?!--from)(.+)\s+\S+$/gim)) {
        for (const src of m[1]!.trim().split(/\s+/)) expect(existsSync(join(context, src)), `${dockerfile}: COPY ${src}`).toBe(true);
      }
    }
  });

  it("runs a real binary of the project in every service built from it, linked onto PATH by its image", () => {
    const bins = projectBins();
    const dockerfile = readFileSync(join(COMPOSE_DIR, "Dockerfile"), "utf8");
    for (const [name, s] of services) {
      if (!s.build) continue;
      const bin = s.command?.[0] ?? "(no command)";
      expect(bins.has(bin), `${name}: ${bin} is not an npm bin of engine/worker/gateway`).toBe(true);
      expect(existsSync(bins.get(bin)!), `${name}: source of ${bin}`).toBe(true);
      const stage = dockerfile.split(/^FROM /m).find((part) => new RegExp(`AS ${s.build!.target}\\s`).test(part)) ?? "";
      expect(stage, `${name}: image target ${s.build.target} links ${bin}`).toContain(`/usr/local/bin/${bin}`);
    }
  });

  it("starts the NATS servers from the real nats-config files, mounted from the repository", () => {
    for (const [name, s] of services.filter(([, s]) => s.image?.startsWith("nats:"))) {
      const [flag, confPath] = s.command ?? [];
      expect(flag).toBe("-c");
      const mount = (s.volumes ?? []).find((v) => v.split(":")[1] === confPath);
      expect(mount, `${name}: ${confPath} is mounted`).toBeDefined();
      const source = resolve(COMPOSE_DIR, mount!.split(":")[0]!);
      expect(dirname(source)).toBe(join(ROOT, "nats-config"));
      expect(existsSync(source), `${name}: ${source}`).toBe(true);
      // What the config includes is mounted next to it (nats-server resolves includes from the file's directory).
      for (const m of readFileSync(source, "utf8").matchAll(/^\s*include\s+["']?([^"'\s]+)/gm)) {
        const included = join(dirname(confPath!), m[1]!);
        expect((s.volumes ?? []).some((v) => v.split(":")[1] === included), `${name}: ${included} (included by ${confPath}) is mounted`).toBe(true);
        expect(existsSync(join(ROOT, "nats-config", m[1]!)), `${name}: nats-config/${m[1]}`).toBe(true);
      }
    }
  });

  it("connects each region's workers to their own region's server with that region's worker certificate", () => {
    for (const [name, s] of services.filter(([n]) => n.startsWith("worker-"))) {
      const region = name.slice("worker-".length);
      const command = s.command ?? [];
      expect(command.slice(command.indexOf("--region"), command.indexOf("--region") + 2)).toEqual(["--region", region]);
      expect(s.environment?.["NATS_TLS_CERT"]).toBe(`/etc/nats/certs/worker-${region}.pem`);
      const server = s.environment?.["NATS_URL"];
      const onHub = server?.split(",").every((u) => /^nats:\/\/hub-\d:4222$/.test(u)) ?? false;
      expect(onHub ? region : server, `${name}: ${server}`).toBe(onHub ? "us-east-1" : `nats://leaf-${region}:4222`);
      if (!onHub) expect(s.environment?.["FM_HUB_DOMAIN"]).toBe("hub");
    }
  });

  it("mounts the TLS files every config names (as scripts/certs makes them) and gives every NATS client its role's certificate", () => {
    const certs = mkdtempSync(join(tmpdir(), "fm-compose-certs-"));
    try {
      execFileSync("bash", [join(ROOT, "scripts/certs"), "--days", "1", certs], { stdio: "ignore" });
      for (const [name, s] of services.filter(([, s]) => s.image?.startsWith("nats:"))) {
        expect(s.volumes ?? [], `${name} mounts the certificates`).toContain("./certs:/etc/nats/certs:ro");
        const conf = readFileSync(join(ROOT, "nats-config", basename(s.command!.at(-1)!)), "utf8");
        const files = [...conf.matchAll(/_TLS_(?:CA|CERT|KEY): "\/etc\/nats\/certs\/([^"]+)"/g)].map((m) => m[1]!);
        expect(files, `${name}: the config's TLS files`).toHaveLength(3);
        for (const file of files) expect(existsSync(join(certs, file)), `${name}: scripts/certs makes ${file}`).toBe(true);
      }
      for (const [name, s] of services.filter(([, s]) => s.build !== undefined)) {
        expect(s.volumes ?? [], `${name} mounts the certificates`).toContain("./certs:/etc/nats/certs:ro");
        // A service logs in as the role its certificate names: no passwords anywhere.
        const role = name.startsWith("worker-") ? name : s.build!.target;
        expect(s.environment?.["NATS_PASSWORD"], `${name}: no password`).toBeUndefined();
        for (const [env, file] of [["NATS_TLS_CA", "ca.pem"], ["NATS_TLS_CERT", `${role}.pem`], ["NATS_TLS_KEY", `${role}-key.pem`]] as const) {
          expect(s.environment?.[env], `${name}: ${env}`).toBe(`/etc/nats/certs/${file}`);
          expect(existsSync(join(certs, file)), `scripts/certs makes ${file}`).toBe(true);
        }
      }
    } finally {
      rmSync(certs, { recursive: true, force: true });
    }
  });

  it("names only services it defines in depends_on, and only volumes it declares", () => {
    for (const [name, s] of services) {
      for (const dep of Object.keys(s.depends_on ?? {})) expect(Object.keys(compose.services), `${name} depends on ${dep}`).toContain(dep);
      for (const v of s.volumes ?? []) {
        const src = v.split(":")[0]!;
        if (!src.startsWith(".") && !src.startsWith("/")) expect(Object.keys(compose.volumes ?? {}), `${name}: volume ${src}`).toContain(src);
      }
    }
  });
});
