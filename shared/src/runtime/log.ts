import { pino, type Logger, type LoggerOptions } from "pino";

export type { Logger } from "pino";

/** Paths pino censors wherever they appear; secrets never reach a log line. */
export const REDACT_PATHS = [
  "vault",
  "*.vault",
  "*.*.vault",
  "task.vault",
  "secret",
  "*.secret",
  "secrets",
  "*.secrets",
  "vaultKey",
  "*.vaultKey",
  "vaultPrivateKey",
  "*.vaultPrivateKey",
  "vaultPrivateKeys",
  "*.vaultPrivateKeys",
  "password",
  "*.password",
  "authorization",
  "*.authorization",
  "headers.authorization",
  "req.headers.authorization",
  "natsCreds",
  "*.natsCreds",
  "databaseUrl",
  "*.databaseUrl",
];

export interface LoggerConfig {
  name: string;
  level?: string;
  pretty?: boolean;
  /** Bound on every line, e.g. { region, workerId }. */
  bindings?: Record<string, unknown>;
  /** Where lines go; defaults to stdout. Tests pass a stream to capture them. */
  destination?: NodeJS.WritableStream;
}

/** The one logger factory: JSON by default, pretty for the dev mesh, secrets redacted. */
export function createLogger(config: LoggerConfig): Logger {
  const options: LoggerOptions = {
    name: config.name,
    level: config.level ?? "info",
    redact: { paths: REDACT_PATHS, censor: "[redacted]" },
    base: { pid: process.pid, ...config.bindings },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  if (config.pretty && !config.destination) {
    return pino({ ...options, transport: { target: "pino-pretty", options: { colorize: true, ignore: "pid,hostname" } } });
  }
  return config.destination ? pino(options, config.destination as pino.DestinationStream) : pino(options);
}

/** A logger that drops everything; for tests and library defaults. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
