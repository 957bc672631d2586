import type { Consumer, JsMsg } from "@nats-io/jetstream";
import { toError, type Logger } from "@flowmonkey/shared";

export interface PullLoop {
  /** Stops pulling; resolves when the loop has ended. */
  stop(): Promise<void>;
}

/**
 * How long each pull request lives at the server. The client's idle-heartbeat monitor runs at
 * half of it and re-pulls after two missed heartbeats, and that monitor is the only thing that
 * revives a consume() whose pull was answered "409 Leadership Change" (the client just waits
 * for the next message): with the library's default of 30 s, losing the hub node that led a
 * stream stalled the engine for ~30 s after the new leader was elected. With 4 s the stall is
 * at most ~4 s, and an idle consumer costs one pull request every 4 s.
 */
export const ENGINE_PULL_EXPIRES_MS = 4000;

/**
 * Pulls from a durable consumer and hands each message on. `backpressure` is awaited before
 * each message so that a slow stage stops the pulling instead of buffering without bound.
 */
export async function startPullLoop(options: {
  consumer: Consumer;
  maxMessages: number;
  /** @default ENGINE_PULL_EXPIRES_MS */
  expiresMs?: number;
  onMessage: (msg: JsMsg) => void;
  backpressure: () => Promise<void> | undefined;
  log: Logger;
}): Promise<PullLoop> {
  const messages = await options.consumer.consume({ max_messages: options.maxMessages, expires: options.expiresMs ?? ENGINE_PULL_EXPIRES_MS });
  const done = (async () => {
    for await (const msg of messages) {
      const wait = options.backpressure();
      if (wait) await wait;
      options.onMessage(msg);
    }
  })().catch((err) => options.log.error({ err: toError(err) }, "pull loop ended with an error"));
  return {
    async stop() {
      messages.stop();
      await done;
    },
  };
}
