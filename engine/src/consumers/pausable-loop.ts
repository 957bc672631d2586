import type { PullLoop } from "./pull-loop.js";

export interface PausableLoop extends PullLoop {
  /** Stops pulling until resume(); messages it had buffered are redelivered after ack_wait. */
  pause(): Promise<void>;
  resume(): Promise<void>;
}

/**
 * A pull loop that can be switched off and on (the intake while the task queue is full).
 * Changes are applied in order, one at a time; after stop() it stays off.
 */
export async function startPausableLoop(start: () => Promise<PullLoop>): Promise<PausableLoop> {
  let loop: PullLoop | undefined = await start();
  let stopped = false;
  let chain: Promise<void> = Promise.resolve();
  const then = (step: () => Promise<void>) => (chain = chain.then(step, step));
  return {
    pause: () =>
      then(async () => {
        const running = loop;
        loop = undefined;
        await running?.stop();
      }),
    resume: () =>
      then(async () => {
        if (!stopped && !loop) loop = await start();
      }),
    stop: () => {
      stopped = true;
      return then(async () => {
        const running = loop;
        loop = undefined;
        await running?.stop();
      });
    },
  };
}
