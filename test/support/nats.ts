/**
 * One nats-server per test file: started in beforeAll on a port the OS picks,
 * with a temp JetStream store, stopped (and its temp dirs removed) in afterAll.
 * Tests inside a file share the server and isolate themselves with uniquePrefix().
 *
 *   const nats = useNatsServer();
 *   it("...", async () => { const nc = await connect({ servers: nats.url }); ... });
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll } from "vitest";
import { startNatsServer, type NatsServerHandle, type StartNatsServerOptions } from "@flowmonkey/shared/dev";

export interface NatsServerFixture {
  /** Client URL of the running server (valid from beforeAll on). */
  readonly url: string;
  /** The launcher handle: restart(), kill(), logs(), storeDir... */
  readonly server: NatsServerHandle;
}

export function useNatsServer(opts: StartNatsServerOptions = {}): NatsServerFixture {
  let server: NatsServerHandle | undefined;
  beforeAll(async () => {
    server = await startNatsServer(opts);
  });
  afterAll(async () => {
    await server?.stop();
    server = undefined;
  });
  const current = (): NatsServerHandle => {
    if (server === undefined) throw new Error("useNatsServer(): the server is only available inside tests and hooks of this file");
    return server;
  };
  return {
    get url() {
      return current().url;
    },
    get server() {
      return current();
    },
  };
}

const ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";

/** `t` + 8 random lowercase alphanumerics: a subject/stream/bucket prefix that keeps tests on a shared server apart. */
export function uniquePrefix(): string {
  const bytes = randomBytes(8);
  let out = "t";
  for (const b of bytes) out += ALPHABET[b % ALPHABET.length];
  return out;
}
