import { BUNDLE_FILES, refName, type BuiltManifest } from "@flowmonkey/shared";
import type { NatsConnection } from "@nats-io/nats-core";
import { Objm } from "@nats-io/obj";

/**
 * Stores a built handler in the handlers bucket as `<type>@<version>/manifest.json` and
 * `.../handler.js`; workers load it from there and verify the hash again. The code goes first:
 * a worker that finds the manifest finds the code it describes.
 */
export async function publishHandler(nc: NatsConnection, bucket: string, built: { manifest: BuiltManifest; manifestBytes: Uint8Array; code: Uint8Array }): Promise<string> {
  const objm = new Objm(nc);
  const store = await objm.open(bucket).catch(() => objm.create(bucket));
  const name = refName(built.manifest);
  await store.putBlob({ name: `${name}/${BUNDLE_FILES.code}`, description: `sha256 ${built.manifest.bundle.sha256}` }, built.code);
  await store.putBlob({ name: `${name}/${BUNDLE_FILES.manifest}` }, built.manifestBytes);
  return name;
}
