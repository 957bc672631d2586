import type { Logger } from "pino";
import { toError } from "../errors/coerce.js";
import type { Service } from "./lifecycle.js";

export interface RunServiceOptions {
  log: Logger;
  graceMs: number;
  signals?: NodeJS.Signals[];
  /** Flushed after the service has closed (its last spans), before the process exits. */
  tracing?: { shutdown(): Promise<void> };
}

/** Exit codes of every binary. */
export const EXIT = { ok: 0, failed: 1, config: 2, forced: 130 } as const;

/**
 * The process shell. Components never touch signals or exit; this does:
 * start → first signal drains within the grace period → a second signal forces → exit code.
 */
export async function runService(build: () => Promise<Service>, options: RunServiceOptions): Promise<never> {
  const { log, graceMs } = options;
  const signals = options.signals ?? ["SIGTERM", "SIGINT"];
  let service: Service;
  try {
    service = await build();
    await service.start();
  } catch (thrown) {
    log.fatal({ err: toError(thrown) }, "start-up failed");
    return exit(EXIT.failed);
  }

  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      log.warn({ signal }, "second signal: forcing shutdown");
      void service.close().finally(() => exit(EXIT.forced));
      return;
    }
    stopping = true;
    log.info({ signal, graceMs }, "draining");
    // Whatever drain and close wait on (a NATS server that is gone, a hung query), the process
    // ends: its grace, then CLOSE_MS to close, then it exits on its own.
    setTimeout(() => {
      log.error({ graceMs, closeMs: CLOSE_MS }, "shutdown overran its grace: exiting without finishing it");
      exit(EXIT.forced);
    }, graceMs + CLOSE_MS).unref();
    void service
      .drain(Date.now() + graceMs)
      .catch((err) => log.error({ err: toError(err) }, "drain failed"))
      .then(() => service.close());
  };
  for (const s of signals) process.on(s, onSignal);

  const err = await service.closed();
  await Promise.race([options.tracing?.shutdown(), new Promise((resolve) => setTimeout(resolve, 5000).unref())]).catch((e: unknown) =>
    log.warn({ err: toError(e) }, "sending the last spans failed"),
  );
  if (err) log.error({ err }, "stopped with an error");
  else log.info("stopped");
  return exit(err ? EXIT.failed : EXIT.ok);
}

/** What closing may take after the drain's grace before the process exits regardless. */
const CLOSE_MS = 5000;

function exit(code: number): never {
  // Let pino flush synchronous destinations before the process goes.
  process.exitCode = code;
  setImmediate(() => process.exit(code));
  return undefined as never;
}
