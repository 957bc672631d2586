/**
 * `flowmonkey nats certs` makes a mesh's TLS material with the project's script (openssl), as
 * the built CLI ships it: a CA, a certificate per server and per role, each role's naming the
 * role (the shipped configs map it to that user), keys readable by their owner only; an existing
 * CA is reused; bad arguments are refused before anything is written.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runCli } from "./run-cli.js";

const target = { natsUrl: "nats://127.0.0.1:1", prefix: "fm" };
const dir = mkdtempSync(join(tmpdir(), "fm-certs-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const openssl = (...args: string[]) => execFileSync("openssl", args, { encoding: "utf8" });

describe("flowmonkey nats certs", () => {
  it("makes a CA, a server's and each role's certificate, signed by it and naming it", async () => {
    const run = await runCli(target, "nats", "certs", "--json", dir, "hub,hub-alias", "--roles", "engine,worker-eu-west-1", "--days", "30");
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ dir });
    for (const name of ["ca", "hub", "engine", "worker-eu-west-1"]) {
      expect(existsSync(join(dir, `${name}.pem`)), name).toBe(true);
      expect(statSync(join(dir, `${name}-key.pem`)).mode & 0o077, `${name}-key.pem is readable by its owner only`).toBe(0);
    }
    for (const name of ["hub", "engine", "worker-eu-west-1"]) expect(openssl("verify", "-CAfile", join(dir, "ca.pem"), join(dir, `${name}.pem`))).toContain(": OK");
    // The role is the certificate's DNS name: `verify_and_map` makes it the user.
    expect(openssl("x509", "-in", join(dir, "worker-eu-west-1.pem"), "-noout", "-ext", "subjectAltName")).toContain("DNS:worker-eu-west-1");
    expect(openssl("x509", "-in", join(dir, "hub.pem"), "-noout", "-ext", "subjectAltName")).toContain("DNS:hub-alias");
  });

  it("reuses the CA it finds: a role added later is signed by the same one", async () => {
    const ca = readFileSync(join(dir, "ca.pem"), "utf8");
    const run = await runCli(target, "nats", "certs", dir, "hub", "--roles", "gateway");
    expect(run.code).toBe(0);
    expect(readFileSync(join(dir, "ca.pem"), "utf8")).toBe(ca);
    expect(openssl("verify", "-CAfile", join(dir, "ca.pem"), join(dir, "gateway.pem"))).toContain(": OK");
  });

  it.each([
    [["--roles", "bad role"], /--roles/],
    [["--days", "0"], /--days/],
    [["hub;rm"], /server names/],
  ])("refuses %j with exit 2 and writes nothing", async (extra, message) => {
    const fresh = join(dir, "refused");
    const run = await runCli(target, "nats", "certs", fresh, ...extra);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(message);
    expect(existsSync(fresh)).toBe(false);
  });
});
