import type { JetStreamManager } from "@nats-io/jetstream";
import type { DlqPurgeReply, DlqPurgeRequest, Names } from "@flowmonkey/shared";
import type { z } from "zod";
import type { Db } from "../store/db.js";
import { purgeDeadTasks } from "../store/dead-tasks.js";

/**
 * `fm.api.dlq.purge`: forgets dead letters. The records go from the database (what `dlq ls`,
 * replay and the fm_dlq_size metric read) and the matching copies from the FM_DLQ stream. A
 * purged dead task can no longer be replayed; its step stays failed (retry it by step instead).
 */
export async function purgeDeadLetters(db: Db, jsm: JetStreamManager, names: Names, req: z.output<typeof DlqPurgeRequest>): Promise<DlqPurgeReply> {
  const purged = await purgeDeadTasks(db, req);
  // The stream's subjects are fm.dlq.<region>.<handler>: the filter narrows to what the request named.
  const filter = req.region && req.handler ? names.subjects.dlq(req.region, req.handler) : undefined;
  let streamPurged = 0;
  if (!req.region && !req.handler) streamPurged = (await jsm.streams.purge(names.streams.dlq)).purged;
  else if (filter) streamPurged = (await jsm.streams.purge(names.streams.dlq, { filter })).purged;
  return { purged, streamPurged };
}
