import { abortableDelay, toError, type Logger } from "@flowmonkey/shared";
import type { BlobBuckets } from "./blob-buckets.js";
import type { Db } from "../store/db.js";
import { findEndedContextBlobs, forgetContextBlobs } from "../store/context-blobs.js";

const PAGE = 200;

/**
 * Deletes the offloaded-context blobs of executions that ended more than `graceMs` ago (their
 * late task deliveries and readers are long done). Safe with replicas: deleting a blob twice is
 * harmless, and a row goes only after its blob did.
 */
export function startContextBlobCleanup(options: { db: Db; blobs: Pick<BlobBuckets, "named">; log: Logger; graceMs: number; intervalMs: number }): {
  stop(): Promise<void>;
  sweepOnce(): Promise<number>;
} {
  const { db, blobs, log } = options;
  const abort = new AbortController();

  async function sweepOnce(): Promise<number> {
    let deleted = 0;
    for (;;) {
      const ended = await findEndedContextBlobs(db, options.graceMs, PAGE);
      if (ended.length === 0) return deleted;
      const gone: typeof ended = [];
      for (const blob of ended) {
        try {
          await blobs.named(blob.bucket).delete(blob.name);
          gone.push(blob);
        } catch (err) {
          // Already gone (another replica, or never stored: a rolled-back upload) counts as deleted.
          if (/not ?found/i.test(toError(err).message)) gone.push(blob);
          else log.warn({ err: toError(err), executionId: blob.executionId, bucket: blob.bucket, blob: blob.name }, "could not delete a context blob; trying again later");
        }
      }
      await forgetContextBlobs(db, gone);
      deleted += gone.length;
      if (gone.length < ended.length || ended.length < PAGE) return deleted;
    }
  }

  const loop = (async () => {
    while (!abort.signal.aborted) {
      await abortableDelay(options.intervalMs, abort.signal);
      if (abort.signal.aborted) break;
      const n = await sweepOnce().catch((err: unknown) => {
        log.warn({ err: toError(err) }, "context blob cleanup failed; trying again");
        return 0;
      });
      if (n > 0) log.debug({ deleted: n }, "context blobs of ended executions deleted");
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
