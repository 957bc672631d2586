import { readFileSync } from "node:fs";
import { credsAuthenticator, type NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { FmError } from "../errors/fm-error.js";
import { toError } from "../errors/coerce.js";
import { reuseCancelledRequestError } from "./settled-requests.js";

export interface ConnectOptions {
  url: string;
  creds?: string | undefined;
  /** User and password (the nats-config files' per-role users); creds win when both are given. */
  user?: string | undefined;
  password?: string | undefined;
  /**
   * TLS files (PEM paths). A CA (or a `tls://` URL) turns TLS on and verifies the server; a
   * certificate and key are shown to servers that verify clients. Absent: plain TCP.
   */
  tls?: NatsTlsFiles | undefined;
  /** Connection name, shown by the server's monitoring (`engine`, `worker eu-west-1`). */
  name: string;
  log: Logger;
  /** How long the first connect may take before start-up fails. */
  timeoutMs?: number;
}

export interface NatsTlsFiles {
  ca?: string | undefined;
  cert?: string | undefined;
  key?: string | undefined;
}

/** The NATS settings every binary reads (fields.natsUrl … fields.natsTlsKey). */
export interface NatsSettings {
  natsUrl: string;
  natsCreds?: string | undefined;
  natsUser?: string | undefined;
  natsPassword?: string | undefined;
  natsTlsCa?: string | undefined;
  natsTlsCert?: string | undefined;
  natsTlsKey?: string | undefined;
}

/** A binary's NATS settings as connectNats takes them. */
export function natsConnectOptions(s: NatsSettings): Pick<ConnectOptions, "url" | "creds" | "user" | "password" | "tls"> {
  const tls = s.natsTlsCa || s.natsTlsCert || s.natsTlsKey ? { ca: s.natsTlsCa, cert: s.natsTlsCert, key: s.natsTlsKey } : undefined;
  return { url: s.natsUrl, creds: s.natsCreds, user: s.natsUser, password: s.natsPassword, tls };
}

/** The same settings as environment variables, for a child process (the CLI's replay runner). */
export function natsEnv(s: NatsSettings): Record<string, string> {
  const pairs: Array<[string, string | undefined]> = [
    ["NATS_URL", s.natsUrl],
    ["NATS_CREDS", s.natsCreds],
    ["NATS_USER", s.natsUser],
    ["NATS_PASSWORD", s.natsPassword],
    ["NATS_TLS_CA", s.natsTlsCa],
    ["NATS_TLS_CERT", s.natsTlsCert],
    ["NATS_TLS_KEY", s.natsTlsKey],
  ];
  return Object.fromEntries(pairs.filter((p): p is [string, string] => p[1] !== undefined));
}

/**
 * Connects with a reconnect-forever policy (a mesh outlives broker restarts) and logs the
 * connection's status changes. The first connect fails fast with UNAVAILABLE and the URL.
 */
export async function connectNats(options: ConnectOptions): Promise<NatsConnection> {
  const { url, creds, user, password, tls, name, log } = options;
  if (tls && (tls.cert === undefined) !== (tls.key === undefined)) {
    throw new FmError("INVALID_INPUT", "NATS_TLS_CERT and NATS_TLS_KEY go together: a client certificate needs its key");
  }
  reuseCancelledRequestError();
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers: url.split(",").map((s) => s.trim()),
      name,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      timeout: options.timeoutMs ?? 5000,
      // Capturing a stack trace per request costs more than a publish itself on the hot path.
      noAsyncTraces: true,
      ...(creds ? { authenticator: credsAuthenticator(readFileSync(creds)) } : user ? { user, pass: password ?? "" } : {}),
      ...(tls ? { tls: { ...(tls.ca ? { caFile: tls.ca } : {}), ...(tls.cert ? { certFile: tls.cert, keyFile: tls.key } : {}) } } : {}),
    });
  } catch (cause) {
    throw new FmError("UNAVAILABLE", `cannot connect to NATS at ${url}: ${toError(cause).message}`, { cause });
  }
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === "ping" || status.type === "staleConnection") continue;
      const level = status.type === "disconnect" || status.type === "error" ? "warn" : "info";
      log[level]({ nats: { status: status.type, server: "server" in status ? status.server : undefined } }, "nats connection status");
    }
  })().catch(() => {
    // The status iterator ends when the connection closes; nothing to report then.
  });
  return nc;
}
