import type { JetStreamClient } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { openBlobStoreLazily, openRegionBlobStore, type BlobStore, type Names } from "@flowmonkey/shared";

/** The blob buckets the engine writes and sweeps, each opened once. */
export interface BlobBuckets {
  /** A region's bucket (`fm_blobs_<region>`), made on first use if missing: a region's contexts go there. */
  ofRegion(region: string): BlobStore;
  /** A bucket by name, as the cleanup's rows record it ('' = the mesh's shared bucket, from before). */
  named(bucket: string): BlobStore;
}

export function createBlobBuckets(nc: NatsConnection | JetStreamClient, names: Names, replicas: number): BlobBuckets {
  const open = new Map<string, BlobStore>();
  const once = (bucket: string, make: () => BlobStore) => {
    let store = open.get(bucket);
    if (!store) open.set(bucket, (store = make()));
    return store;
  };
  return {
    ofRegion: (region) => {
      const bucket = names.regionBuckets.blobs(region);
      return once(bucket, () => openRegionBlobStore(nc, bucket, { create: true, replicas }));
    },
    named: (bucket) => {
      const name = bucket || names.buckets.blobs;
      return once(name, () => openBlobStoreLazily(nc, name));
    },
  };
}
