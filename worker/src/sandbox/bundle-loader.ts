import { BUNDLE_FILES, FmError, refName, toError, verifyBundle, type HandlerRef, type VerifiedBundle } from "@flowmonkey/shared";
import type { ObjectStore } from "@nats-io/obj";
import { readFile } from "node:fs/promises";
import { join } from "node:path";

/** Where a worker finds built handlers: a directory (`<dir>/<type>@<version>/`) and/or the `fm_handlers` bucket. */
export interface BundleSources {
  dir?: string | undefined;
  /** Opened only when a bundle is not in the directory. */
  store?: () => Promise<ObjectStore>;
}

/** The directory first (a local override), then the bucket; the hash is verified either way. */
export async function loadBundle(ref: HandlerRef, sources: BundleSources): Promise<VerifiedBundle> {
  const name = refName(ref);
  if (sources.dir !== undefined) {
    const base = join(sources.dir, name);
    const files = await Promise.all([readFile(join(base, BUNDLE_FILES.manifest)), readFile(join(base, BUNDLE_FILES.code))]).catch((err: unknown) => {
      if ((err as { code?: unknown }).code === "ENOENT") return undefined;
      throw new FmError("HANDLER_INTEGRITY", `${base}: cannot read the bundle: ${toError(err).message}`, { cause: err });
    });
    if (files) return verifyBundle(ref, files[0], files[1], base);
  }
  if (sources.store) {
    const store = await sources.store();
    const [manifest, code] = await Promise.all([store.getBlob(`${name}/${BUNDLE_FILES.manifest}`), store.getBlob(`${name}/${BUNDLE_FILES.code}`)]);
    if (manifest && code) return verifyBundle(ref, manifest, code, `handlers bucket ${name}`);
  }
  const where = [sources.dir ? `directory ${sources.dir}` : undefined, sources.store ? "the handlers bucket" : undefined].filter(Boolean).join(" or ");
  throw new FmError("HANDLER_NOT_FOUND", `handler bundle ${name} is not in ${where || "any configured source"} (flowmonkey handler build / publish)`);
}
