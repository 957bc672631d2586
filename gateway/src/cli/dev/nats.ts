import { findNatsServer, isNatsReachable, NATS_SERVER_INSTALL_HINT, startNatsServer } from "@flowmonkey/shared/dev";
import { UsageError } from "../args.js";
import type { Output } from "../output.js";
import { devPaths, repoRoot } from "./paths.js";

export interface DevNats {
  url: string;
  /** Set when this process started the server; stops it (by PID) and waits for it to exit. */
  stop?: () => Promise<void>;
  pid?: number;
}

/**
 * The NATS server of the dev mesh: the one at `url` when it answers, else nats-server from
 * PATH with nats-config/dev.conf (its store under .flowmonkey/nats, relative to the repo root).
 */
export async function ensureNats(url: string, out: Output): Promise<DevNats> {
  if (await isNatsReachable(url, 1000)) {
    out.info(`using the NATS server at ${url}`);
    return { url };
  }
  if (!findNatsServer()) {
    throw new UsageError(`no NATS server answers at ${url}, and nats-server is not on PATH. ${NATS_SERVER_INSTALL_HINT}`, "UNAVAILABLE");
  }
  const port = loopbackPort(url);
  out.info(`no NATS server at ${url}; starting nats-server with ${devPaths.natsConfig}`);
  const server = await startNatsServer({
    configFile: devPaths.natsConfig,
    cwd: repoRoot,
    // Ctrl-C must not reach it: the dev mesh stops it last, after the engine has drained.
    detached: true,
    ...(port === undefined ? {} : { port }),
  });
  out.info(`nats-server running (pid ${server.pid}) at ${server.url}`);
  return { url: server.url, pid: server.pid, stop: () => server.stop() };
}

/** The port of a loopback NATS_URL, so a server we start listens where the user said; else the config's. */
function loopbackPort(url: string): number | undefined {
  const first = url.split(",")[0]?.trim() ?? "";
  try {
    const u = new URL(first.includes("://") ? first : `nats://${first}`);
    const loopback = ["127.0.0.1", "localhost", "[::1]"].includes(u.hostname);
    return loopback && u.port !== "" ? Number(u.port) : undefined;
  } catch {
    return undefined;
  }
}
