import { abortableDelay, toError, type Logger } from "@flowmonkey/shared";
import type { Db } from "../store/db.js";
import { deleteEndedExecutions, deleteOldRecords } from "../store/retention.js";

const PAGE = 500;

/**
 * Forgets executions that ended more than `retentionMs` ago (FM_RETENTION_DAYS), and old
 * rejections and outbox dead letters, so the store does not grow forever. Runs every
 * `intervalMs` in pages (one short transaction each); safe with replicas (SKIP LOCKED).
 * `retentionMs` 0 keeps everything.
 */
export function startRetentionSweep(options: { db: Db; log: Logger; retentionMs: number; intervalMs: number }): { stop(): Promise<void>; sweepOnce(): Promise<number> } {
  const { db, log, retentionMs } = options;
  const abort = new AbortController();

  async function sweepOnce(): Promise<number> {
    if (retentionMs <= 0) return 0;
    let deleted = 0;
    for (;;) {
      const n = await deleteEndedExecutions(db, retentionMs, PAGE);
      deleted += n;
      if (n < PAGE || abort.signal.aborted) break;
    }
    const records = await deleteOldRecords(db, retentionMs);
    if (deleted + records > 0) log.info({ executions: deleted, records, retentionMs }, "retention: forgot ended executions and old records");
    return deleted;
  }

  const loop = (async () => {
    if (retentionMs <= 0) return;
    while (!abort.signal.aborted) {
      await sweepOnce().catch((err: unknown) => log.warn({ err: toError(err) }, "retention sweep failed; trying again"));
      await abortableDelay(options.intervalMs, abort.signal);
    }
  })();

  return {
    sweepOnce,
    async stop() {
      abort.abort();
      await loop;
    },
  };
}
