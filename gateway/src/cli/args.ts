import { parseArgs } from "node:util";
import { fields, isFmError, loadConfig, parseWith, toError, Token, type ConfigOf, type ErrorCode } from "@flowmonkey/shared";
import { z } from "zod";

/** A command line the CLI cannot act on: exit code 2, with the error code in the message. */
export class UsageError extends Error {
  override readonly name = "UsageError";
  readonly code: ErrorCode;
  constructor(message: string, code: ErrorCode = "INVALID_INPUT") {
    super(message);
    this.code = code;
  }
}

/** Checks an argument against a schema; a mismatch is a usage error naming the argument. */
export function parseArg<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  try {
    return parseWith(schema, value, what);
  } catch (err) {
    if (isFmError(err)) throw new UsageError(err.message, err.code);
    throw err;
  }
}

/** An id argument (flow, execution): it becomes a subject token. The message names the argument. */
export const tokenArg = (value: string | undefined, name: string): string =>
  parseArg(z.object({ [name]: Token }), { [name]: value ?? "" }, "argument")[name] as string;

/** Options every NATS-speaking command accepts: env first, `--nats-url` etc. override. */
export const cliConfig = {
  natsUrl: fields.natsUrl,
  natsCreds: fields.natsCreds,
  natsUser: fields.natsUser,
  natsPassword: fields.natsPassword,
  natsTlsCa: fields.natsTlsCa,
  natsTlsCert: fields.natsTlsCert,
  natsTlsKey: fields.natsTlsKey,
  prefix: fields.prefix,
};
export type CliConfig = ConfigOf<typeof cliConfig>;

type OptionSpec = { type: "string" | "boolean"; short?: string; multiple?: boolean };

export interface CommandSpec {
  /** `start <flowId> [--input json] [--wait]` */
  usage: string;
  options?: Record<string, OptionSpec>;
  positionals?: { min: number; max?: number };
}

export interface ParsedCommand {
  positionals: string[];
  config: CliConfig;
  json: boolean;
  string(name: string): string | undefined;
  boolean(name: string): boolean;
}

const COMMON: Record<string, OptionSpec> = { json: { type: "boolean" }, help: { type: "boolean", short: "h" } };

/** Lines describing the shared config flags, for help texts. */
export function configUsage(): string {
  return Object.values(cliConfig)
    .filter((f) => f.flag)
    .map((f) => `  --${f.flag!.padEnd(22)} ${f.doc}${f.env ? ` (env ${f.env})` : ""}`)
    .join("\n");
}

/**
 * argv of one command → its positionals, its own options and the validated shared config.
 * Unknown options, a missing argument or a bad config value are UsageError/ConfigError (exit 2).
 */
export function parseCommand(argv: string[], spec: CommandSpec): ParsedCommand | "help" {
  const configFlags: Record<string, OptionSpec> = {};
  for (const f of Object.values(cliConfig)) if (f.flag) configFlags[f.flag] = { type: "string" };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: argv,
      options: { ...configFlags, ...COMMON, ...spec.options },
      strict: true,
      allowPositionals: true,
    });
  } catch (cause) {
    throw new UsageError(`${toError(cause).message}\nusage: flowmonkey ${spec.usage}`);
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  if (values["help"]) return "help";

  const { min, max } = spec.positionals ?? { min: 0, max: 0 };
  const count = parsed.positionals.length;
  if (count < min || (max !== undefined && count > max)) {
    throw new UsageError(`expected ${describeCount(min, max)}, got ${count}\nusage: flowmonkey ${spec.usage}`);
  }

  // Hand only the config flags to loadConfig, which validates them with the env (flags win).
  const configArgv = Object.keys(configFlags).flatMap((flag) => {
    const v = values[flag];
    return typeof v === "string" ? [`--${flag}`, v] : [];
  });
  const config = loadConfig(cliConfig, { argv: configArgv, program: "flowmonkey" });

  return {
    positionals: parsed.positionals,
    config,
    json: values["json"] === true,
    string: (name) => (typeof values[name] === "string" ? (values[name] as string) : undefined),
    boolean: (name) => values[name] === true,
  };
}

function describeCount(min: number, max: number | undefined): string {
  if (max === min) return `${min} argument${min === 1 ? "" : "s"}`;
  if (max === undefined) return `at least ${min} argument${min === 1 ? "" : "s"}`;
  return `${min} to ${max} arguments`;
}
