import { describe, expect, it } from "vitest";
import { z } from "zod";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { ConfigError, configHelp, HelpRequested, loadConfig } from "../src/config/load.js";
import { fields } from "../src/config/fields.js";

/** A gateway-like binary: a few shared fields plus one of its own with a boolean flag. */
const testFields = {
  natsUrl: fields.natsUrl,
  natsCreds: fields.natsCreds,
  prefix: fields.prefix,
  region: fields.region,
  databaseUrl: fields.databaseUrl,
  dataDir: fields.dataDir,
  heartbeatTimeoutMs: fields.heartbeatTimeoutMs,
  httpPort: fields.httpPort,
  logLevel: fields.logLevel,
  logPretty: fields.logPretty,
  json: { schema: z.boolean().default(false), flag: "json", boolean: true, doc: "print JSON" },
};

const load = (env: Record<string, string> = {}, argv: string[] = []) => loadConfig(testFields, { env, argv, program: "test-bin" });

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error("expected a ConfigError");
}

describe("loadConfig", () => {
  it("defaults (DESIGN.md's) when nothing is set", () => {
    expect(load()).toEqual({
      natsUrl: "nats://127.0.0.1:4222",
      natsCreds: undefined,
      prefix: "fm",
      region: "us-east-1",
      databaseUrl: undefined,
      dataDir: ".flowmonkey",
      heartbeatTimeoutMs: 60_000,
      httpPort: 8080,
      logLevel: "info",
      logPretty: false,
      json: false,
    });
  });

  it("reads the environment", () => {
    const config = load({
      NATS_URL: "nats://a:4222,nats://b:4222",
      NATS_CREDS: "/etc/fm.creds",
      FM_PREFIX: "acme",
      FM_REGION: "eu-west-1",
      DATABASE_URL: "postgres://db/fm",
      FM_DATA_DIR: "/var/lib/fm",
      FM_HEARTBEAT_TIMEOUT_MS: "15000",
      FM_HTTP_PORT: "9000",
      LOG_LEVEL: "debug",
      FM_LOG_PRETTY: "true",
    });
    expect(config).toMatchObject({
      natsUrl: "nats://a:4222,nats://b:4222",
      natsCreds: "/etc/fm.creds",
      prefix: "acme",
      region: "eu-west-1",
      databaseUrl: "postgres://db/fm",
      dataDir: "/var/lib/fm",
      heartbeatTimeoutMs: 15_000,
      httpPort: 9000,
      logLevel: "debug",
      logPretty: true,
    });
  });

  it("flags override the environment", () => {
    const config = load(
      { FM_HTTP_PORT: "9000", FM_REGION: "eu-west-1", NATS_URL: "nats://env:4222" },
      ["--port", "9001", "--region=ap-south-1", "--json"],
    );
    expect(config).toMatchObject({ httpPort: 9001, region: "ap-south-1", natsUrl: "nats://env:4222", json: true });
  });

  it("an empty environment variable counts as unset", () => {
    expect(load({ FM_HTTP_PORT: "", NATS_CREDS: "" })).toMatchObject({ httpPort: 8080, natsCreds: undefined });
  });

  it.each<[string, Record<string, string>, string[], RegExp]>([
    ["FM_HTTP_PORT=abc", { FM_HTTP_PORT: "abc" }, [], /FM_HTTP_PORT="abc"/],
    ["FM_HTTP_PORT out of range", { FM_HTTP_PORT: "70000" }, [], /FM_HTTP_PORT="70000"/],
    ["FM_HTTP_PORT not an integer", { FM_HTTP_PORT: "80.5" }, [], /FM_HTTP_PORT="80\.5"/],
    ["heartbeat below its minimum", { FM_HEARTBEAT_TIMEOUT_MS: "10" }, [], /FM_HEARTBEAT_TIMEOUT_MS="10"/],
    ["unknown log level", { LOG_LEVEL: "loud" }, [], /LOG_LEVEL="loud"/],
    ["prefix that is not a token", { FM_PREFIX: "a.b" }, [], /FM_PREFIX="a\.b"/],
    ["bad boolean", { FM_LOG_PRETTY: "maybe" }, [], /FM_LOG_PRETTY="maybe"/],
    ["bad flag value names the flag", {}, ["--port", "abc"], /--port="abc"/],
  ])("%s: the error names the variable", (_name, env, argv, pattern) => {
    const err = configError(() => load(env, argv));
    expect(err.message).toMatch(pattern);
    expect(err.message).toMatch(/^test-bin: invalid configuration/);
  });

  it("reports every bad variable at once", () => {
    const err = configError(() => load({ FM_HTTP_PORT: "abc", LOG_LEVEL: "loud" }));
    expect(err.message).toContain("FM_HTTP_PORT");
    expect(err.message).toContain("LOG_LEVEL");
  });

  it("the message carries the option's documentation", () => {
    expect(configError(() => load({ FM_HTTP_PORT: "abc" })).message).toContain(fields.httpPort.doc);
  });

  it.each([
    [["--bogus", "1"], /--bogus/],
    [["--port"], /--port/],
    [["positional"], /positional/],
  ])("command line %j is refused", (argv, pattern) => {
    const err = configError(() => load({}, argv));
    expect(err.message).toMatch(pattern);
    // The error shows what is accepted.
    expect(err.message).toContain("--nats-url");
  });

  it("does not echo secrets it refuses", () => {
    const secretFields = {
      key: { schema: z.string().min(10), env: "FM_SIGNING_KEY", doc: "signing key" },
    };
    const err = configError(() => loadConfig(secretFields, { env: { FM_SIGNING_KEY: "hunter2" } }));
    expect(err.message).toContain("FM_SIGNING_KEY=(hidden)");
    expect(err.message).not.toContain("hunter2");
  });

  // BUG (shared/src/config/fields.ts + load.ts): numeric fields use z.coerce.number(), and
  // Number("  ") is 0, so a whitespace-only FM_HTTP_PORT silently becomes port 0 (any free port)
  // instead of the default or an error naming the variable.
  it.each(["  ", "\t"])("FM_HTTP_PORT=%j is not silently turned into port 0", (value) => {
    let port: number | undefined;
    try {
      port = load({ FM_HTTP_PORT: value }).httpPort;
    } catch (err) {
      expect((err as Error).message).toContain("FM_HTTP_PORT");
      return;
    }
    expect(port).toBe(8080);
  });
});

describe("configHelp", () => {
  it("lists every flag and environment variable", () => {
    const help = configHelp(testFields);
    for (const f of Object.values(testFields)) {
      if ("flag" in f && f.flag) expect(help).toContain(`--${f.flag}`);
      if ("env" in f && f.env) expect(help).toContain(f.env);
    }
  });
});

describe("--help", () => {
  it("is not an error: loadConfig answers with the usage text, every flag and variable in it", () => {
    let thrown: unknown;
    try {
      load({}, ["--help"]);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(HelpRequested);
    expect((thrown as Error).message).toMatch(/^usage: test-bin \[options\]/);
    expect((thrown as Error).message).toContain(configHelp(testFields));
  });

  it.each(["engine", "worker", "gateway"])("flowmonkey-%s --help prints its usage to stdout and exits 0", (binary) => {
    const main = fileURLToPath(new URL(`../../${binary}/dist/main.js`, import.meta.url));
    const result = spawnSync(process.execPath, [main, "--help"], { encoding: "utf8", env: { PATH: process.env["PATH"] ?? "" }, timeout: 20_000 });
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toMatch(new RegExp(`^usage: flowmonkey-${binary} \\[options\\]`));
    expect(result.stdout).toContain("--nats-url");
    expect(result.stderr).toBe("");
  });
});
