import { connectNats, natsConnectOptions, createApiClient, createSubjects, silentLogger, type ApiClient, type Subjects } from "@flowmonkey/shared";
import type { NatsConnection } from "@nats-io/nats-core";
import type { CliConfig } from "./args.js";

export interface Session {
  nc: NatsConnection;
  api: ApiClient;
  subjects: Subjects;
}

/**
 * A NATS connection and fm.api client for one command, closed when the command is done.
 * The CLI logs nothing itself (output.ts speaks for it), hence the silent logger.
 */
export async function withSession<T>(config: CliConfig, fn: (session: Session) => Promise<T>): Promise<T> {
  const nc = await connectNats({
    ...natsConnectOptions(config),
    name: "flowmonkey-cli",
    log: silentLogger(),
    timeoutMs: 3000,
  });
  try {
    return await fn({ nc, api: createApiClient(nc, { prefix: config.prefix }), subjects: createSubjects(config.prefix) });
  } finally {
    await nc.close();
  }
}
