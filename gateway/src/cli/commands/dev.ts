import { createApiClient, createSubjects, EXIT, fields, loadConfig } from "@flowmonkey/shared";
import { parseCommand, UsageError, type CliConfig } from "../args.js";
import { ChildGroup } from "../dev/children.js";
import { loadExamples, pushExamples, regionsOf, type Example } from "../dev/examples.js";
import { ensureNats, type DevNats } from "../dev/nats.js";
import { checkBuilt, devPaths, repoRoot } from "../dev/paths.js";
import { pollUntil } from "../dev/poll.js";
import { printHelp, type Output } from "../output.js";
import { withSession } from "../session.js";

export const devUsage = "dev [--port <n>] [--host <addr>] [--region <r>] [--concurrency <n>] [--nats-url <url>]";

/** The engine may create and migrate an embedded database on first start; give it time. */
const ENGINE_READY_MS = 90_000;
const GATEWAY_READY_MS = 30_000;
/** How long each child may drain after SIGTERM before it is killed. */
const STOP_GRACE_MS = 10_000;
/** Signals closer together than this count as one (see onSignal). */
const DOUBLE_SIGNAL_MS = 1000;

const devFields = { region: fields.region, httpPort: fields.httpPort, httpHost: fields.httpHost };

/**
 * `flowmonkey dev` (`npm start`): a whole mesh on this machine. Reuses or starts nats-server,
 * runs the engine, the gateway and one worker per region the examples use as child processes,
 * registers examples/flows, prints how to start a flow, and stops it all on Ctrl-C.
 */
export async function devCommand(argv: string[], out: Output): Promise<number> {
  const cmd = parseCommand(argv, {
    usage: devUsage,
    options: { port: { type: "string" }, host: { type: "string" }, region: { type: "string" }, concurrency: { type: "string" } },
  });
  if (cmd === "help") return printHelp(out, devUsage, [`Runs a local mesh with the example flows; Ctrl-C stops it.`]);
  const passed = ["port", "host", "region"].flatMap((flag) => (cmd.string(flag) ? [`--${flag}`, cmd.string(flag)!] : []));
  const dev = loadConfig(devFields, { argv: passed, program: "flowmonkey dev" });
  if (dev.httpPort === 0) throw new UsageError("flowmonkey dev needs a fixed gateway port (FM_HTTP_PORT or --port), not 0");
  const concurrency = cmd.string("concurrency") ?? "4";
  if (!/^[1-9]\d{0,3}$/.test(concurrency)) throw new UsageError(`--concurrency=${concurrency}: must be a positive integer`);

  await checkBuilt();
  const examples = await loadExamples();
  const regions = regionsOf(examples, dev.region);
  const gatewayUrl = `http://${dev.httpHost === "0.0.0.0" ? "127.0.0.1" : dev.httpHost}:${dev.httpPort}`;

  // Stops on the first Ctrl-C/SIGTERM or when a child dies; a second signal kills everything.
  const stopper = new AbortController();
  const children = new ChildGroup(out);
  let exitCode: number = EXIT.ok;
  let firstSignalAt = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    // One Ctrl-C can arrive twice (the terminal signals the process group, and a wrapper such as
    // npm forwards it too); only a deliberate second press, a moment later, forces.
    if (stopper.signal.aborted && Date.now() - firstSignalAt < DOUBLE_SIGNAL_MS) return;
    if (stopper.signal.aborted) {
      out.warn(`${signal} again: killing the dev mesh`);
      exitCode = EXIT.forced;
      children.kill();
      return;
    }
    firstSignalAt = Date.now();
    out.info(`\n${signal}: stopping the dev mesh (Ctrl-C again to kill it)…`);
    stopper.abort(new Error(`stopped by ${signal}`));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  children.onUnexpectedExit((exit) => {
    out.error("UNAVAILABLE", `${exit.name} exited (code ${exit.code}, signal ${exit.signal}); stopping the dev mesh`);
    exitCode = EXIT.failed;
    stopper.abort(new Error(`${exit.name} exited`));
  });

  let nats: DevNats | undefined;
  try {
    nats = await ensureNats(cmd.config.natsUrl, out);
    const env: NodeJS.ProcessEnv = {
      ...process.env, // DATABASE_URL, FM_DATA_DIR, LOG_LEVEL... pass through
      NATS_URL: nats.url,
      FM_PREFIX: cmd.config.prefix,
      FM_REGION: dev.region,
      FM_HTTP_PORT: String(dev.httpPort),
      FM_HTTP_HOST: dev.httpHost,
      FM_LOG_PRETTY: "true",
    };
    // The engine first: it provisions the streams the workers' task pools live on.
    children.start({ name: "engine", file: devPaths.engine, env, cwd: repoRoot });
    await withSession({ ...cmd.config, natsUrl: nats.url }, async ({ nc }) => {
      const api = createApiClient(nc, { prefix: cmd.config.prefix, timeoutMs: 1000 });
      await pollUntil(() => api.listFlows(), { timeoutMs: ENGINE_READY_MS, what: "the engine's API", signal: stopper.signal });
      await pushExamples(createApiClient(nc, { prefix: cmd.config.prefix }), examples, out);
    });
    children.start({ name: "gateway", file: devPaths.gateway, env, cwd: repoRoot });
    for (const region of regions) {
      // No --handlers: a worker serves every built-in handler by default.
      const args = ["--region", region, "--concurrency", concurrency];
      children.start({ name: `worker ${region}`, file: devPaths.worker, args, env, cwd: repoRoot });
    }
    await pollUntil(() => checkHealth(gatewayUrl), { timeoutMs: GATEWAY_READY_MS, what: "the gateway", signal: stopper.signal });

    out.info(banner({ gatewayUrl, nats, regions, examples, config: cmd.config }));
    await new Promise<void>((resolve) => stopper.signal.addEventListener("abort", () => resolve(), { once: true }));
  } catch (err) {
    // After a stop request, failures of the start-up steps are just the stop taking effect.
    if (!stopper.signal.aborted) throw err;
  } finally {
    // Gateway and workers first (no new work, in-flight tasks finish), then the engine, then NATS.
    await children.stop([(n) => n === "gateway" || n.startsWith("worker"), (n) => n === "engine"], STOP_GRACE_MS);
    await nats?.stop?.();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
  out.info("dev mesh stopped");
  return exitCode;
}

async function checkHealth(url: string): Promise<void> {
  const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2000) });
  if (!res.ok) throw new Error(`GET ${url}/readyz answered ${res.status}: ${await res.text()}`);
}

interface BannerInput {
  gatewayUrl: string;
  nats: DevNats;
  regions: string[];
  examples: Example[];
  config: CliConfig;
}

function banner({ gatewayUrl, nats, regions, examples, config }: BannerInput): string {
  const flowId = examples.find((e) => e.definition.id === "hello")?.definition.id ?? examples[0]?.definition.id ?? "hello";
  const body = `'{"input":{"name":"world"}}'`;
  const server = nats.url === fields.natsUrl.schema.parse(undefined) ? "" : ` -s ${nats.url}`;
  const subject = createSubjects(config.prefix).flowStart(flowId);
  const database = process.env["DATABASE_URL"] ? "PostgreSQL (DATABASE_URL)" : `embedded PGlite under ${process.env["FM_DATA_DIR"] || ".flowmonkey"}`;
  return [
    "",
    "FlowMonkey dev mesh is up.",
    `  dashboard  ${gatewayUrl}/`,
    `  NATS       ${nats.url}${nats.pid ? ` (nats-server pid ${nats.pid}, started here)` : " (already running)"}`,
    `  database   ${database}`,
    `  workers    ${regions.join(", ")} (every built-in handler)`,
    `  flows      ${examples.map((e) => e.definition.id).join(", ") || "(none in examples/flows)"}`,
    "",
    "Start a flow:",
    `  nats pub${server} ${subject} ${body}`,
    `  curl -X POST ${gatewayUrl}/v1/flows/${flowId}/executions -H 'content-type: application/json' -d ${body}`,
    `  node gateway/dist/cli/main.js start ${flowId} --input '{"name":"world"}' --wait${server ? ` --nats-url ${nats.url}` : ""}`,
    "",
    "Ctrl-C stops everything.",
    "",
  ].join("\n");
}
