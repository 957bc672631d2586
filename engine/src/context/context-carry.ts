import { BlobRef, ContextManifest, decode, FmError, type Logger } from "@flowmonkey/shared";
import type { Db } from "../store/db.js";
import { insertContextBlobsSql, type ContextBlobRow } from "../store/context-blobs.js";
import type { BlobBuckets } from "./blob-buckets.js";

/** Copies a task's offloaded context into `region`'s blob bucket; resolves with the reference there. */
export type ContextCarry = (region: string, executionId: string, ref: BlobRef) => Promise<BlobRef>;

const COPY_CONCURRENCY = 8;

/**
 * A task's offloaded context is stored in the bucket of the region it was written for; a task
 * the routing sends elsewhere (failover, least-busy) must find it in its new region's bucket, the
 * only one that region's workers may read. Blobs are content-addressed, so a copy is the same
 * bytes under the same name: each key blob missing there is copied, then the manifest (last:
 * a manifest in place means its blobs are), and the copies are recorded for the cleanup sweep.
 */
export function createContextCarry(o: { db: Db; blobs: BlobBuckets; log: Logger }): ContextCarry {
  return async (region, executionId, ref) => {
    const to = o.blobs.ofRegion(region);
    if (ref.bucket === to.bucket) return ref;
    const from = o.blobs.named(ref.bucket);
    const moved = { ...ref, bucket: to.bucket };
    if (await to.has(ref.name)) return moved;
    const manifestJson = await from.get(ref.name, { maxBytes: ref.size });
    if (!manifestJson) throw new FmError("INTERNAL", `the context manifest ${ref.name} is missing from ${ref.bucket}; cannot send the task to ${region}`);
    const manifest = decode(manifestJson, ContextManifest, { maxBytes: ref.size, what: `context manifest ${ref.name}` });
    const names = Object.values(manifest.keys).flatMap((e) => (e.kind === "blob" ? [e.name] : []));
    const copy = async (name: string) => {
      if (await to.has(name)) return;
      const data = await from.get(name);
      if (!data) throw new FmError("INTERNAL", `the context blob ${name} is missing from ${ref.bucket}; cannot send the task to ${region}`);
      await to.put(name, data);
    };
    for (let i = 0; i < names.length; i += COPY_CONCURRENCY) await Promise.all(names.slice(i, i + COPY_CONCURRENCY).map(copy));
    await to.put(ref.name, manifestJson);
    const rows: ContextBlobRow[] = [...names, ref.name].map((name) => ({ executionId, bucket: to.bucket, name }));
    await o.db.query(insertContextBlobsSql("$1"), [JSON.stringify(rows)]);
    o.log.info({ executionId, from: ref.bucket, to: to.bucket, blobs: rows.length }, "carried an offloaded context to the region a task was routed to");
    return moved;
  };
}
