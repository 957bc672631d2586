import type { Consumer, JsMsg } from "@nats-io/jetstream";
import { toError, type Logger } from "@flowmonkey/shared";

export interface PullLoop {
  /** Stops pulling; resolves when the loop has ended. */
  stop(): Promise<void>;
}

/**
 * Pulls from a durable consumer and hands each message on. `backpressure` is awaited before
 * each message so that a slow stage stops the pulling instead of buffering without bound.
 */
export async function startPullLoop(options: {
  consumer: Consumer;
  maxMessages: number;
  onMessage: (msg: JsMsg) => void;
  backpressure: () => Promise<void> | undefined;
  log: Logger;
}): Promise<PullLoop> {
  const messages = await options.consumer.consume({ max_messages: options.maxMessages });
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
