import { createNames, EXIT, fields, loadConfig, provisionMesh } from "@flowmonkey/shared";
import { parseCommand } from "../args.js";
import { printHelp, type Output } from "../output.js";
import { withSession } from "../session.js";

export const natsInitUsage = "nats init [--heartbeat-timeout-ms <ms>] [--nats-url <url>] [--prefix <p>] [--json]";

/** `flowmonkey nats init`: creates or updates the mesh's streams, consumers and buckets (idempotent). */
export async function natsInitCommand(argv: string[], out: Output): Promise<number> {
  const cmd = parseCommand(argv, { usage: natsInitUsage, options: { "heartbeat-timeout-ms": { type: "string" } } });
  if (cmd === "help") return printHelp(out, natsInitUsage, [`Provisions JetStream streams, consumers, KV and Object Store buckets.`]);
  const flag = cmd.string("heartbeat-timeout-ms");
  // Only this command needs it, so only this command validates it (FM_HEARTBEAT_TIMEOUT_MS).
  const { heartbeatTimeoutMs } = loadConfig(
    { heartbeatTimeoutMs: fields.heartbeatTimeoutMs },
    { argv: flag ? ["--heartbeat-timeout-ms", flag] : [], program: "flowmonkey nats init" },
  );
  const names = createNames(cmd.config.prefix);
  return withSession(cmd.config, async ({ nc }) => {
    await provisionMesh(nc, names, { heartbeatTimeoutMs });
    const summary = { natsUrl: cmd.config.natsUrl, streams: names.streams, buckets: names.buckets };
    out.result(
      [
        `provisioned the mesh on ${cmd.config.natsUrl} (prefix ${names.prefix})`,
        `  streams: ${Object.values(names.streams).join(", ")}`,
        `  buckets: ${Object.values(names.buckets).join(", ")}`,
      ],
      summary,
    );
    return EXIT.ok;
  });
}
