import { abortableDelay } from "@flowmonkey/shared";
import type { PullLoop } from "./pull-loop.js";

export interface PausableLoop extends PullLoop {
  /** Stops pulling until resume(); messages it had buffered are redelivered after ack_wait. */
  pause(): Promise<void>;
  /** Pulls again; a start that fails (NATS reconnecting) is tried again until it works or the loop is paused or stopped. */
  resume(): Promise<void>;
}

/** Between attempts to restart a loop whose start failed. */
export const RESTART_RETRY_MS = 1000;

/**
 * A pull loop that can be switched off and on (the intake while the task queue is full).
 * Changes are applied in order, one at a time; after stop() it stays off. It never rejects:
 * the caller says what it wants, and the loop gets there.
 */
export async function startPausableLoop(start: () => Promise<PullLoop>, onStartError: (err: unknown) => void = () => undefined): Promise<PausableLoop> {
  let loop: PullLoop | undefined = await start();
  let wanted: "running" | "paused" | "stopped" = "running";
  let chain: Promise<void> = Promise.resolve();
  const then = (step: () => Promise<void>) => (chain = chain.then(step, step));
  const halt = async () => {
    const running = loop;
    loop = undefined;
    await running?.stop().catch(onStartError);
  };
  return {
    pause: () => {
      if (wanted === "stopped") return chain;
      wanted = "paused";
      return then(halt);
    },
    resume: () => {
      if (wanted === "stopped") return chain;
      wanted = "running";
      return then(async () => {
        while (wanted === "running" && !loop) {
          try {
            loop = await start();
          } catch (err) {
            onStartError(err);
            await abortableDelay(RESTART_RETRY_MS);
          }
        }
      });
    },
    stop: () => {
      wanted = "stopped";
      return then(halt);
    },
  };
}
