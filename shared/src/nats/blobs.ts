import { promisify } from "node:util";
import { gunzip, gzip } from "node:zlib";
import { StorageType, type JetStreamClient } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { Objm, type ObjectStore } from "@nats-io/obj";
import { FmError } from "../errors/fm-error.js";
import { onceUntilFailure } from "../runtime/once-until-failure.js";

const gzipAsync = promisify(gzip);
const gunzipAsync = promisify(gunzip);

/**
 * gzip'd values in an Object Store blob bucket (a region's `fm_blobs_<region>`): large
 * checkpoints (worker) and large contexts (engine writes, workers read). One interface so that both sides share the lazy
 * opening and the compression, and so that tests can wrap it to see what is read.
 */
export interface BlobStore {
  readonly bucket: string;
  /** Stores `data` gzip'd under `name`, replacing what was there; resolves with the stored (compressed) size. */
  put(name: string, data: Uint8Array): Promise<number>;
  /**
   * The bytes stored under `name`, gunzip'd, or undefined when there is no such blob.
   * `maxBytes` bounds the gunzip'd size (a corrupt or hostile blob cannot exhaust memory).
   */
  get(name: string, options?: { maxBytes?: number }): Promise<Uint8Array | undefined>;
  /** Whether `name` holds a blob (a cheap metadata read: no chunk is fetched). */
  has(name: string): Promise<boolean>;
  delete(name: string): Promise<void>;
}

/** Largest gunzip'd blob read by default: well above the biggest context or checkpoint the mesh expects. */
export const DEFAULT_MAX_BLOB_BYTES = 512 * 1024 * 1024;

/**
 * A BlobStore over `bucket`, opened on first use only (most processes never store anything
 * large). A failed open is not cached: the next use tries again.
 */
/** `nc`, or a JetStream client bound to another domain (a leaf worker reads the hub's bucket). */
export function openBlobStoreLazily(nc: NatsConnection | JetStreamClient, bucket: string): BlobStore {
  return blobStoreOver(bucket, onceUntilFailure(() => new Objm(nc).open(bucket)));
}

/**
 * A region's blob bucket (Names.regionBuckets.blobs), opened on first use. `create`: the engine, which
 * makes it when missing. Otherwise a bucket that does not open is made only where the caller may
 * (a development server without permissions); under the shipped permissions a worker cannot,
 * and is told that the engine makes it (for the regions of its topology, and for any region it
 * sends a large context to).
 */
export function openRegionBlobStore(nc: NatsConnection | JetStreamClient, bucket: string, options: { create?: boolean; replicas?: number } = {}): BlobStore {
  const config = { storage: StorageType.File, replicas: options.replicas ?? 1 };
  const objm = new Objm(nc);
  const open = async () => {
    if (options.create) return objm.create(bucket, config);
    try {
      return await objm.open(bucket);
    } catch (missing) {
      return objm.create(bucket, config).catch((cause: unknown) => {
        throw new FmError("INTERNAL", `blob bucket ${bucket} cannot be opened (${(missing as Error).message}) nor made here; the engine makes it for the regions it knows`, { cause });
      });
    }
  };
  return blobStoreOver(bucket, onceUntilFailure(open));
}

/** A BlobStore over an ObjectStore handle (or a function that opens one). */
export function blobStoreOver(bucket: string, store: () => Promise<ObjectStore>): BlobStore {
  return {
    bucket,
    async put(name, data) {
      const gz = await gzipAsync(data);
      await (await store()).putBlob({ name }, gz);
      return gz.byteLength;
    },
    async get(name, options = {}) {
      const gz = await (await store()).getBlob(name);
      if (!gz) return undefined;
      const maxOutputLength = options.maxBytes ?? DEFAULT_MAX_BLOB_BYTES;
      try {
        return await gunzipAsync(gz, { maxOutputLength });
      } catch (cause) {
        throw new FmError("INTERNAL", `blob ${name} in ${bucket} is not gzip data of at most ${maxOutputLength} bytes`, { cause });
      }
    },
    async has(name) {
      const info = await (await store()).info(name);
      return info !== null && !info.deleted;
    },
    async delete(name) {
      await (await store()).delete(name);
    },
  };
}
