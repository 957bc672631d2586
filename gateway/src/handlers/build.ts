import { BUNDLE_FILES, FmError, HandlerManifest, refName, sha256Hex, verifyBundle, type BuiltManifest } from "@flowmonkey/shared";
import { build } from "esbuild";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { z } from "zod";

/** The author's manifest file in a handler's source directory. */
export const MANIFEST_SOURCE = "handler.json";
const DEFAULT_ENTRIES = ["index.ts", "index.js", "index.mjs"];

export interface BuiltHandler {
  manifest: BuiltManifest;
  /** `<outDir>/<type>@<version>`: manifest.json and handler.js. */
  dir: string;
}

async function readManifestSource(file: string): Promise<HandlerManifest> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, "utf8"));
  } catch (cause) {
    throw new FmError("INVALID_INPUT", `${file}: cannot read it as JSON: ${(cause as Error).message}`, { cause });
  }
  const parsed = HandlerManifest.safeParse(raw);
  if (!parsed.success) throw new FmError("INVALID_INPUT", `${file}: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

/**
 * `flowmonkey handler build <dir>`: one esbuild bundle of the handler and everything it
 * imports, as an IIFE that sets `__fmHandler` (the sandbox evaluates it in a context with no
 * `require`), plus the manifest with the bundle's sha256. Node builtins cannot be bundled and
 * fail the build here rather than at run time.
 */
export async function buildHandler(sourceDir: string, outDir = join(sourceDir, "dist")): Promise<BuiltHandler> {
  const manifestFile = resolve(sourceDir, MANIFEST_SOURCE);
  const manifest = await readManifestSource(manifestFile);
  const entry = await findEntry(sourceDir, manifest.entry);
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    write: false,
    format: "iife",
    globalName: "__fmHandler",
    platform: "neutral",
    mainFields: ["module", "main"],
    target: "es2022",
    define: { "process.env.NODE_ENV": '"production"' },
    logLevel: "silent",
  }).catch((err: unknown) => {
    // esbuild's errors carry where and why (e.g. a Node builtin the sandbox cannot have); say them all.
    const errors = (err as { errors?: Array<{ text: string; location?: { file: string; line: number } | null; notes?: Array<{ text: string }> }> }).errors ?? [];
    const why = errors.map((e) => `${e.location ? `${e.location.file}:${e.location.line}: ` : ""}${e.text}${e.notes?.[0] ? ` (${e.notes[0].text})` : ""}`).join("; ");
    throw new FmError("INVALID_INPUT", `${entry}: the bundle does not build: ${why || (err as Error).message}`, { cause: err });
  });
  const code = result.outputFiles[0]!.contents;
  const built: BuiltManifest = { ...manifest, bundle: { file: BUNDLE_FILES.code, sha256: sha256Hex(code), bytes: code.byteLength } };
  const dir = join(outDir, refName(manifest));
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, BUNDLE_FILES.code), code);
  await writeFile(join(dir, BUNDLE_FILES.manifest), `${JSON.stringify(built, null, 2)}\n`);
  return { manifest: built, dir };
}

async function findEntry(sourceDir: string, entry: string | undefined): Promise<string> {
  const candidates = entry ? [entry] : DEFAULT_ENTRIES;
  for (const candidate of candidates) {
    const path = resolve(sourceDir, candidate);
    if (!path.startsWith(resolve(sourceDir))) throw new FmError("INVALID_INPUT", `entry ${candidate} is outside ${sourceDir}`);
    if (await readFile(path).then(() => true, () => false)) return path;
  }
  throw new FmError("INVALID_INPUT", `${sourceDir}: no entry (${candidates.join(", ")}); set "entry" in ${MANIFEST_SOURCE}`);
}

/** Reads a built handler directory back (publish's input), verified like a worker verifies it. */
export async function readBuiltHandler(dir: string): Promise<{ manifestBytes: Uint8Array; code: Uint8Array; manifest: BuiltManifest }> {
  const [manifestBytes, code] = await Promise.all([readFile(join(dir, BUNDLE_FILES.manifest)), readFile(join(dir, BUNDLE_FILES.code))]).catch((cause: unknown) => {
    throw new FmError("INVALID_INPUT", `${dir}: not a built handler (${BUNDLE_FILES.manifest} + ${BUNDLE_FILES.code}); run flowmonkey handler build`, { cause });
  });
  const raw = HandlerManifest.parse(JSON.parse(new TextDecoder().decode(manifestBytes)));
  const verified = verifyBundle({ type: raw.type, version: raw.version }, manifestBytes, code, dirname(join(dir, BUNDLE_FILES.manifest)));
  return { manifestBytes, code, manifest: verified.manifest };
}
