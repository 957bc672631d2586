import { parseArgs } from "node:util";
import { z } from "zod";
import type { ConfigField } from "./fields.js";

export class ConfigError extends Error {
  override readonly name: string = "ConfigError";
}

/** `--help` / `-h`: not an error; its message is the usage text, printed to stdout with exit 0. */
export class HelpRequested extends ConfigError {
  override readonly name = "HelpRequested";
}

export type ConfigFields = Record<string, ConfigField>;
export type ConfigOf<F extends ConfigFields> = { [K in keyof F]: z.output<F[K]["schema"]> };

export interface LoadConfigOptions {
  env?: NodeJS.ProcessEnv;
  argv?: string[];
  /** Program name for error messages and help. */
  program?: string;
}

/**
 * Environment, then flags (flags win), validated field by field. A bad value stops start-up
 * with a message that names the variable or flag and the rule it broke.
 */
export function loadConfig<F extends ConfigFields>(fieldsOf: F, options: LoadConfigOptions = {}): ConfigOf<F> {
  const env = options.env ?? process.env;
  const argv = options.argv ?? [];
  const program = options.program ?? "flowmonkey";
  if (argv.includes("--help") || argv.includes("-h")) {
    throw new HelpRequested(`usage: ${program} [options]\n\nEvery option is a flag or an environment variable (the flag wins):\n\n${configHelp(fieldsOf)}`);
  }
  const flagOptions: Record<string, { type: "string" | "boolean" }> = {};
  for (const f of Object.values(fieldsOf)) if (f.flag) flagOptions[f.flag] = { type: f.boolean ? "boolean" : "string" };

  let flags: Record<string, string | boolean | undefined>;
  try {
    flags = parseArgs({ args: argv, options: flagOptions, strict: true, allowPositionals: false }).values as Record<
      string,
      string | boolean | undefined
    >;
  } catch (cause) {
    throw new ConfigError(`${program}: ${(cause as Error).message}\n\n${configHelp(fieldsOf)}`);
  }

  const out: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const [key, f] of Object.entries(fieldsOf)) {
    const fromFlag = f.flag ? flags[f.flag] : undefined;
    const fromEnv = f.env ? env[f.env] : undefined;
    // An empty or blank variable is unset (z.coerce.number would turn "  " into 0).
    const raw = fromFlag ?? (fromEnv === undefined || fromEnv.trim() === "" ? undefined : fromEnv);
    const parsed = f.schema.safeParse(raw);
    if (parsed.success) {
      out[key] = parsed.data;
    } else {
      const source = fromFlag !== undefined ? `--${f.flag}` : f.env ?? `--${f.flag}`;
      const shown = f.env && /CREDS|SECRET|KEY|PASSWORD|TOKEN/.test(f.env) ? "(hidden)" : JSON.stringify(raw);
      problems.push(`${source}=${shown}: ${parsed.error.issues.map((i) => i.message).join("; ")} (${f.doc})`);
    }
  }
  if (problems.length) throw new ConfigError(`${program}: invalid configuration:\n  ${problems.join("\n  ")}`);
  return out as ConfigOf<F>;
}

export function configHelp(fieldsOf: ConfigFields): string {
  return Object.values(fieldsOf)
    .map((f) => `  ${(f.flag ? `--${f.flag}` : "").padEnd(24)} ${(f.env ?? "").padEnd(26)} ${f.doc}`)
    .join("\n");
}

/**
 * For binaries: load the config, or print the ConfigError (which names the variable) to
 * stderr and exit with the config exit code (2); `--help` prints the usage to stdout and
 * exits 0. Any other error propagates.
 */
export function loadConfigOrExit<T>(load: () => T): T {
  try {
    return load();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    if (err instanceof HelpRequested) {
      process.stdout.write(`${err.message}\n`);
      process.exit(0);
    }
    process.stderr.write(`${err.message}\n`);
    process.exit(2);
  }
}

/** loadConfigOrExit for configuration that needs I/O (a worker's handler modules). */
export async function loadConfigOrExitAsync<T>(load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (err) {
    return loadConfigOrExit(() => {
      throw err;
    });
  }
}
