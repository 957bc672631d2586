/**
 * The gateway's HTTP hardening against a real mesh: security headers on every response (a CSP
 * with no inline script and no framing), CORS only for configured origins, failed-token rate
 * limiting per address, and HTTPS when given a certificate.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger } from "@flowmonkey/shared";
import { createGateway, hashToken, type Gateway } from "@flowmonkey/gateway";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startMesh, type TestMesh } from "../../../test/support/mesh.js";
import { useNatsServer } from "../../../test/support/nats.js";
import { useTestDatabase } from "../../../test/support/postgres.js";

const nats = useNatsServer();
const pg = useTestDatabase();
const log = createLogger({ name: "hardening-test", level: "silent" });
let mesh: TestMesh;
const gateways: Gateway[] = [];
const dir = mkdtempSync(join(tmpdir(), "fm-gw-tls-"));

async function gateway(extra: Partial<Parameters<typeof createGateway>[0]> = {}): Promise<Gateway> {
  const g = createGateway({ nc: mesh.nc, log, prefix: mesh.prefix, port: 0, host: "127.0.0.1", ...extra });
  await g.start();
  gateways.push(g);
  return g;
}

beforeAll(async () => {
  mesh = await startMesh({ natsUrl: nats.url, databaseUrl: pg.url, workers: [] });
});
afterAll(async () => {
  for (const g of gateways) await g.close();
  await mesh?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("gateway hardening", () => {
  it("every response carries the security headers; the CSP allows no inline script and no framing", async () => {
    const g = await gateway();
    for (const path of ["/", "/v1/flows", "/openapi.json", "/no-such-route"]) {
      const res = await fetch(`${g.url}${path}`);
      const csp = res.headers.get("content-security-policy") ?? "";
      expect(csp, path).toContain("script-src 'self'");
      expect(csp, path).not.toContain("unsafe-inline");
      expect(csp, path).toContain("frame-ancestors 'none'");
      expect(res.headers.get("x-frame-options"), path).toBe("DENY");
      expect(res.headers.get("x-content-type-options"), path).toBe("nosniff");
      expect(res.headers.get("referrer-policy"), path).toBe("no-referrer");
    }
  });

  it("no CORS unless configured; then only for the listed origins", async () => {
    const preflight = (url: string, origin: string) =>
      fetch(`${url}/v1/flows`, { method: "OPTIONS", headers: { origin, "access-control-request-method": "GET" } });
    const closed = await gateway();
    expect((await preflight(closed.url, "https://evil.example")).headers.get("access-control-allow-origin")).toBeNull();
    const open = await gateway({ corsOrigins: ["https://ops.example.com"] });
    expect((await preflight(open.url, "https://ops.example.com")).headers.get("access-control-allow-origin")).toBe("https://ops.example.com");
    expect((await preflight(open.url, "https://evil.example")).headers.get("access-control-allow-origin")).toBeNull();
  });

  it("ten wrong tokens from one address, then 429 with Retry-After — even for a right one", async () => {
    const good = "good-0123456789abcdef-token";
    const g = await gateway({ apiTokens: { [hashToken(good)]: { scopes: ["admin"] } } });
    const get = (token: string) => fetch(`${g.url}/v1/flows`, { headers: { authorization: `Bearer ${token}` } });
    expect((await get(good)).status).toBe(200);
    for (let i = 0; i < 10; i++) expect((await get(`wrong-${i}-0123456789abcdef`)).status).toBe(401);
    const blocked = await get(good);
    expect(blocked.status).toBe(429);
    expect(Number(blocked.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(((await blocked.json()) as { code: string }).code).toBe("RATE_LIMITED");
  });

  it("serves HTTPS with FM_HTTP_TLS_CERT/KEY", async () => {
    const key = join(dir, "key.pem");
    const cert = join(dir, "cert.pem");
    execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert], { stdio: "ignore" });
    const g = await gateway({ tls: { cert: readFileSync(cert), key: readFileSync(key) } });
    expect(g.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const body = await new Promise<string>((resolve, reject) => {
      const req = httpsRequest(`${g.url}/healthz`, { ca: readFileSync(cert) }, (res) => {
        let text = "";
        res.on("data", (chunk: Buffer) => (text += chunk.toString()));
        res.on("end", () => resolve(`${res.statusCode} ${text}`));
      });
      req.on("error", reject);
      req.end();
    });
    expect(body).toMatch(/^(200|503) /);
  });
});
