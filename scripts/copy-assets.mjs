#!/usr/bin/env node
// Copies the non-TypeScript files the binaries read at run time next to their compiled code:
//   gateway/src/dashboard/**               → gateway/dist/dashboard/
//   engine/src/store/migrations/*.sql      → engine/dist/store/migrations/   (when present)
//   scripts/certs                          → gateway/dist/scripts/certs      (`flowmonkey nats certs`)
// tsc only emits .js, so without this `npm run build` would produce a gateway with no dashboard
// and an engine with no schema. Paths are relative to the repository root (this file's parent).
import { cp, mkdir, readdir, rm, stat } from "node:fs/promises";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

async function exists(path) {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Replaces `to` with a copy of the directory `from` (so files deleted in src disappear from dist). */
async function copyDir(from, to) {
  if (!(await exists(from))) return 0;
  await rm(to, { recursive: true, force: true });
  await cp(from, to, { recursive: true });
  return (await readdir(to, { recursive: true })).length;
}

/** Copies only the files of `from` whose names end in `ext`. */
async function copyFiles(from, to, ext) {
  if (!(await exists(from))) return 0;
  const files = (await readdir(from)).filter((f) => f.endsWith(ext));
  if (files.length === 0) return 0;
  await mkdir(to, { recursive: true });
  await Promise.all(files.map((f) => cp(join(from, f), join(to, f))));
  return files.length;
}

/** Copies one file. */
async function copyFile(from, to) {
  if (!(await exists(from))) return 0;
  await mkdir(dirname(to), { recursive: true });
  await cp(from, to);
  return 1;
}

const jobs = [
  ["gateway/src/dashboard", "gateway/dist/dashboard", (f, t) => copyDir(f, t)],
  ["scripts/certs", "gateway/dist/scripts/certs", (f, t) => copyFile(f, t)],
  ["engine/src/store/migrations", "engine/dist/store/migrations", (f, t) => copyFiles(f, t, ".sql")],
];

for (const [from, to, copy] of jobs) {
  const count = await copy(join(root, from), join(root, to));
  if (count > 0) process.stdout.write(`copy-assets: ${relative(root, join(root, from))} → ${to} (${count} files)\n`);
}
