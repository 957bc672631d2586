import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createServer as createHttpsServer } from "node:https";
import { serve } from "@hono/node-server";
import type { Hono } from "hono";

export interface HttpServer {
  /** `http://host:port` once listening (the real port when 0 was asked for). */
  readonly url: string;
  /** Stops accepting connections and waits for open requests, up to the deadline (epoch ms). */
  drain(deadlineMs?: number): Promise<void>;
  /** Cuts every remaining connection; idempotent. */
  close(): Promise<void>;
}

/** Listens; resolves once bound, rejects when the port cannot be had (EADDRINUSE names it). */
export function listen(app: Hono, port: number, host: string, tls?: { cert: string | Buffer; key: string | Buffer }): Promise<HttpServer> {
  return new Promise((resolve, reject) => {
    const server = (
      tls ? serve({ fetch: app.fetch, port, hostname: host, createServer: createHttpsServer, serverOptions: { cert: tls.cert, key: tls.key } }) : serve({ fetch: app.fetch, port, hostname: host })
    ) as Server;
    const closed = new Promise<void>((res) => server.once("close", () => res()));
    server.once("error", (err) => reject(new Error(`gateway cannot listen on ${host}:${port}: ${err.message}`, { cause: err })));
    server.once("listening", () => {
      const address = server.address() as AddressInfo;
      const shownHost = address.family === "IPv6" ? `[${address.address}]` : address.address;
      let stopping = false;
      const stop = () => {
        if (stopping) return;
        stopping = true;
        // close() stops accepting and (Node >= 19) closes idle keep-alive sockets; busy ones finish first.
        server.close();
        server.closeIdleConnections();
      };
      resolve({
        url: `${tls ? "https" : "http"}://${shownHost}:${address.port}`,
        async drain(deadlineMs) {
          stop();
          if (deadlineMs === undefined) return closed;
          let timer: NodeJS.Timeout | undefined;
          const expired = new Promise<void>((res) => (timer = setTimeout(res, Math.max(0, deadlineMs - Date.now()))));
          await Promise.race([closed, expired]).finally(() => clearTimeout(timer));
        },
        async close() {
          stop();
          server.closeAllConnections();
          await closed;
        },
      });
    });
  });
}
