/**
 * The mesh's TLS material for tests: scripts/certs (the project's own command) makes a CA, a
 * certificate per shipped server and a client certificate once per test process, into a temp
 * dir removed when the process exits. The shipped hub, hub-cluster and leaf configs require
 * mutual TLS, so every test that starts them connects with `clientTls`.
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
  /** The client certificate, as @nats-io/transport-node's `tls` option takes it. */
  clientTls: { caFile: string; certFile: string; keyFile: string };
  /** The same as the NATS_TLS_* environment of a binary or the CLI. */
  clientEnv: Record<string, string>;
}

let made: TestCerts | undefined;

export function testCerts(): TestCerts {
  if (made) return made;
  const dir = mkdtempSync(join(tmpdir(), "fm-certs-"));
  process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  execFileSync("bash", [SCRIPT, "--days", "2", dir], { stdio: ["ignore", "ignore", "inherit"] });
  const ca = join(dir, "ca.pem");
  const clientTls = { caFile: ca, certFile: join(dir, "client.pem"), keyFile: join(dir, "client-key.pem") };
  made = {
    dir,
    ca,
    server: (name) => ({ cert: join(dir, `${name}.pem`), key: join(dir, `${name}-key.pem`) }),
    clientTls,
    clientEnv: { NATS_TLS_CA: clientTls.caFile, NATS_TLS_CERT: clientTls.certFile, NATS_TLS_KEY: clientTls.keyFile },
  };
  return made;
}

/** The `<PREFIX>_TLS_*` variables of a shipped config, for startNatsServer({ vars }). */
export function tlsVars(prefix: "HUB" | "LEAF", server: string): Record<string, string> {
  const certs = testCerts();
  const { cert, key } = certs.server(server);
  return { [`${prefix}_TLS_CA`]: certs.ca, [`${prefix}_TLS_CERT`]: cert, [`${prefix}_TLS_KEY`]: key };
}
