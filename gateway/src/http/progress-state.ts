import { decode, onceUntilFailure, Progress, STEP_KEYS, toError, type Logger } from "@flowmonkey/shared";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";

/**
 * The latest progress of an execution's steps, from KV `fm_progress` (workers keep each step's
 * last update there): what a stream sends on (re)connect so that bars are where they are, not
 * at zero until the next update. The bucket is opened on first use; a read that fails gives
 * nothing rather than failing the stream.
 */
export function createProgressState(nc: NatsConnection, bucket: string, log: Logger) {
  const open = onceUntilFailure(() => new Kvm(nc).open(bucket));

  return {
    async latestOf(executionId: string): Promise<Progress[]> {
      try {
        const store = await open();
        const out: Progress[] = [];
        for await (const key of await store.keys(STEP_KEYS.ofExecution(executionId))) {
          const entry = await store.get(key);
          if (!entry || entry.operation !== "PUT" || entry.value.byteLength === 0) continue;
          try {
            out.push(decode(entry.value, Progress));
          } catch {
            // Anyone may write the bucket; a malformed value is skipped like a malformed live update.
          }
        }
        return out;
      } catch (err) {
        log.debug({ err: toError(err), executionId }, "no stored progress to catch up with");
        return [];
      }
    },
  };
}
