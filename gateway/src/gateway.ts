import {
  createApiClient,
  createSubjects,
  DEFAULT_MAX_MESSAGE_BYTES,
  deferred,
  Releasers,
  toError,
  type Logger,
  type Service,
} from "@flowmonkey/shared";
import type { NatsConnection } from "@nats-io/nats-core";
import { createApp } from "./http/app.js";
import { listen, type HttpServer } from "./http/server.js";
import type { ApiTokens } from "./http/auth/tokens.js";

export interface GatewayOptions {
  nc: NatsConnection;
  log: Logger;
  /** Subject prefix of the mesh. @default "fm" */
  prefix?: string;
  /** 0 = a free port; read `url` after start(). */
  port: number;
  host: string;
  /** Largest request body. @default 1 MiB (FM_MAX_MESSAGE_BYTES) */
  maxMessageBytes?: number;
  /** How long an fm.api request may take. @default 10000 */
  apiTimeoutMs?: number;
  /** How long /healthz waits for the engine. @default 2000 */
  healthTimeoutMs?: number;
  /**
   * API tokens by the sha256 of each (FM_API_TOKENS). Given: every /v1 route needs a bearer token,
   * and a tenant's token is confined to its tenant. Absent: no authentication (development).
   */
  apiTokens?: ApiTokens | undefined;
  /** Origins allowed to call the API from a browser (FM_HTTP_CORS_ORIGINS). @default none: no CORS headers */
  corsOrigins?: readonly string[] | undefined;
  /** Serve HTTPS with this PEM certificate and key (FM_HTTP_TLS_CERT / FM_HTTP_TLS_KEY). */
  tls?: { cert: string | Buffer; key: string | Buffer } | undefined;
  /** CPU, heap and event-loop series on /metrics (the binary turns them on). @default false */
  processMetrics?: boolean;
  /** Close `nc` when the gateway closes (the binary hands its connection over). @default false */
  ownsConnection?: boolean;
}

export interface Gateway extends Service {
  /** `http://host:port`; available once start() resolved. */
  readonly url: string;
  /** Open SSE streams (each holds NATS subscriptions). */
  openStreams(): number;
}

/** Composition root: api clients → routes → HTTP server, released in reverse order. */
export function createGateway(options: GatewayOptions): Gateway {
  const { nc, log } = options;
  const subjects = createSubjects(options.prefix);
  const deps = {
    nc,
    log,
    api: createApiClient(nc, { prefix: subjects.prefix, timeoutMs: options.apiTimeoutMs ?? 10_000 }),
    healthApi: createApiClient(nc, { prefix: subjects.prefix, timeoutMs: options.healthTimeoutMs ?? 2_000 }),
    maxMessageBytes: options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
  };
  const { app, events } = createApp(deps, subjects, { processMetrics: options.processMetrics ?? false, apiTokens: options.apiTokens, corsOrigins: options.corsOrigins });
  const releasers = new Releasers();
  const done = deferred<Error | undefined>();
  let http: HttpServer | undefined;

  if (options.ownsConnection) releasers.add("nats", () => nc.close());

  let closing: Promise<void> | undefined;
  let starting: Promise<void> | undefined;
  const start = (): Promise<void> => (starting ??= doStart());
  const doStart = async () => {
    if (closing) throw new Error("gateway: start() after close()");
    http = await listen(app, options.port, options.host, options.tls);
    releasers.add("http", () => http?.close());
    // Streams hold connections open; they must end before the server can finish closing.
    releasers.add("sse", () => events.closeAll());
    log.info({ url: http.url, prefix: subjects.prefix }, "gateway listening");
    // A connection that closes for good (not a reconnect) leaves nothing to serve.
    void nc.closed().then((err) => {
      if (!closing) void close(err ?? new Error("the NATS connection closed"));
    });
  };

  // Memoized: close() twice, or close() racing a lost connection, release once. A close during
  // start() waits for it, so a server bound late is still released.
  const close = (err?: Error): Promise<void> => (closing ??= release(err));
  const release = async (err?: Error) => {
    await starting?.catch(() => undefined);
    try {
      await releasers.releaseAll((name, e) => log.warn({ err: e, resource: name }, "release failed"));
      done.resolve(err);
    } catch (thrown) {
      done.resolve(err ?? toError(thrown));
    }
  };

  return {
    get url() {
      if (!http) throw new Error("gateway: url is known only after start()");
      return http.url;
    },
    openStreams: () => events.openStreams(),
    start,
    async drain(deadlineMs) {
      // drain() during start() waits for it, so the server it binds is drained too.
      await starting?.catch(() => undefined);
      events.closeAll();
      await http?.drain(deadlineMs);
    },
    close: () => close(),
    closed: () => done.promise,
  };
}
