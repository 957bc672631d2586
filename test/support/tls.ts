/**
 * The mesh's TLS material for tests: scripts/certs (the project's own command) makes a CA, a
 * certificate per shipped server and one per role (engine, gateway, worker-<region>, sys) once
 * per test process, into a temp dir removed when the process exits. The shipped hub,
 * hub-cluster and leaf configs require mutual TLS and take the role a client certificate names
 * as its user, so every test that starts them connects with `clientTls(role)`.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const SCRIPT = resolve(import.meta.dirname, "../../scripts/certs");

export interface TestCerts {
  dir: string;
  ca: string;
  /** A server's certificate and key (hub, hub-1..3, leaf-<region>). */
  server(name: string): { cert: string; key: string };
  /** A role's client certificate (its login), as @nats-io/transport-node's `tls` option takes it. */
  clientTls(role: string): { caFile: string; certFile: string; keyFile: string };
  /** The same as the NATS_TLS_* environment of a binary or the CLI. */
  clientEnv(role: string): Record<string, string>;
}

let made: TestCerts | undefined;

export function testCerts(): TestCerts {
  if (made) return made;
  const dir = mkdtempSync(join(tmpdir(), "fm-certs-"));
  process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  execFileSync("bash", [SCRIPT, "--days", "2", dir], { stdio: ["ignore", "ignore", "inherit"] });
  const ca = join(dir, "ca.pem");
  const clientTls = (role: string) => ({ caFile: ca, certFile: join(dir, `${role}.pem`), keyFile: join(dir, `${role}-key.pem`) });
  made = {
    dir,
    ca,
    server: (name) => ({ cert: join(dir, `${name}.pem`), key: join(dir, `${name}-key.pem`) }),
    clientTls,
    clientEnv: (role) => {
      const files = clientTls(role);
      return { NATS_TLS_CA: files.caFile, NATS_TLS_CERT: files.certFile, NATS_TLS_KEY: files.keyFile };
    },
  };
  return made;
}

/** The `<PREFIX>_TLS_*` variables of a shipped config, for startNatsServer({ vars }). */
export function tlsVars(prefix: "HUB" | "LEAF", server: string): Record<string, string> {
  const certs = testCerts();
  const { cert, key } = certs.server(server);
  return { [`${prefix}_TLS_CA`]: certs.ca, [`${prefix}_TLS_CERT`]: cert, [`${prefix}_TLS_KEY`]: key };
}
