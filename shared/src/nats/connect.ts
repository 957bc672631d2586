import { readFileSync } from "node:fs";
import { credsAuthenticator, type NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { FmError } from "../errors/fm-error.js";
import { toError } from "../errors/coerce.js";

export interface ConnectOptions {
  url: string;
  creds?: string | undefined;
  /** User and password (the nats-config files' per-role users); creds win when both are given. */
  user?: string | undefined;
  password?: string | undefined;
  /** Connection name, shown by the server's monitoring (`engine`, `worker eu-west-1`). */
  name: string;
  log: Logger;
  /** How long the first connect may take before start-up fails. */
  timeoutMs?: number;
}

/**
 * Connects with a reconnect-forever policy (a mesh outlives broker restarts) and logs the
 * connection's status changes. The first connect fails fast with UNAVAILABLE and the URL.
 */
export async function connectNats(options: ConnectOptions): Promise<NatsConnection> {
  const { url, creds, user, password, name, log } = options;
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
