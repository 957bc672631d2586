import { abortableDelay, toError, type Logger } from "@flowmonkey/shared";
import type { Db } from "../store/db.js";
import { deleteEndedExecutions, deleteOldRecords, flowRetentionPeriods, type RetentionClass } from "../store/retention.js";

const PAGE = 500;

/** What the sweep has forgotten since the engine started (the fm_retention_purged_total series). */
export interface RetentionTotals {
  executions: number;
  records: number;
}

/**
 * Forgets ended executions once their period is over — the engine's `retentionMs`
 * (FM_RETENTION) or their flow's `retention:` — rolling their usage up first, and old
 * rejections and outbox dead letters, so the store does not grow forever. Runs every
 * `intervalMs` in pages (one short transaction each, never a lock the hot path waits for:
 * rows are claimed with SKIP LOCKED, so it is also safe with replicas). `retentionMs` 0 keeps
 * executions on the engine's period (and the records) forever; flow periods still apply.
 */
export function startRetentionSweep(options: { db: Db; log: Logger; retentionMs: number; intervalMs: number }): {
  stop(): Promise<void>;
  sweepOnce(): Promise<number>;
  totals(): RetentionTotals;
} {
  const { db, log, retentionMs } = options;
  const abort = new AbortController();
  const totals: RetentionTotals = { executions: 0, records: 0 };

  async function drain(cls: RetentionClass): Promise<number> {
    let deleted = 0;
    for (;;) {
      const n = await deleteEndedExecutions(db, cls, PAGE);
      deleted += n;
      totals.executions += n;
      if (n < PAGE || abort.signal.aborted) return deleted;
    }
  }

  async function sweepOnce(): Promise<number> {
    const classes: RetentionClass[] = (await flowRetentionPeriods(db)).map((ms) => ({ kind: "flow", retentionMs: ms }));
    if (retentionMs > 0) classes.unshift({ kind: "default", retentionMs });
    let deleted = 0;
    for (const cls of classes) deleted += await drain(cls);
    const records = retentionMs > 0 ? await deleteOldRecords(db, retentionMs) : 0;
    totals.records += records;
    if (deleted + records > 0) log.info({ executions: deleted, records, retentionMs }, "retention: forgot ended executions and old records");
    return deleted;
  }

  const loop = (async () => {
    while (!abort.signal.aborted) {
      await sweepOnce().catch((err: unknown) => log.warn({ err: toError(err) }, "retention sweep failed; trying again"));
      await abortableDelay(options.intervalMs, abort.signal);
    }
  })();

  return {
    sweepOnce,
    totals: () => ({ ...totals }),
    async stop() {
      abort.abort();
      await loop;
    },
  };
}
