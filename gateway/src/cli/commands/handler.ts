import { createNames, EXIT, refName } from "@flowmonkey/shared";
import { buildHandler, MANIFEST_SOURCE, readBuiltHandler } from "../../handlers/build.js";
import { publishHandler } from "../../handlers/publish.js";
import { parseCommand } from "../args.js";
import { printHelp, type Output } from "../output.js";
import { withSession } from "../session.js";

export const handlerBuildUsage = "handler build <dir> [--out <dir>] [--json]";
export const handlerPublishUsage = "handler publish <built-dir> [--json]";

/** `flowmonkey handler build`: bundle + manifest + sha256 into `<out>/<type>@<version>/`. */
export async function handlerBuildCommand(argv: string[], out: Output): Promise<number> {
  const cmd = parseCommand(argv, { usage: handlerBuildUsage, options: { out: { type: "string" } }, positionals: { min: 1, max: 1 } });
  if (cmd === "help") {
    return printHelp(out, handlerBuildUsage, [`Bundles the handler in <dir> (${MANIFEST_SOURCE} + its entry) with esbuild into one file, with its manifest and sha256 (default out: <dir>/dist).`]);
  }
  const built = await buildHandler(cmd.positionals[0]!, cmd.string("out"));
  out.result(`${refName(built.manifest)} built in ${built.dir} (${built.manifest.bundle.bytes} bytes, sha256 ${built.manifest.bundle.sha256})`, {
    handler: refName(built.manifest),
    dir: built.dir,
    ...built.manifest.bundle,
  });
  return EXIT.ok;
}

/** `flowmonkey handler publish`: a built handler into the `fm_handlers` Object Store bucket. */
export async function handlerPublishCommand(argv: string[], out: Output): Promise<number> {
  const cmd = parseCommand(argv, { usage: handlerPublishUsage, positionals: { min: 1, max: 1 } });
  if (cmd === "help") return printHelp(out, handlerPublishUsage, [`Stores a built handler (the directory handler build wrote) in the fm_handlers bucket.`]);
  const built = await readBuiltHandler(cmd.positionals[0]!);
  return withSession(cmd.config, async ({ nc }) => {
    const bucket = createNames(cmd.config.prefix).buckets.handlers;
    const name = await publishHandler(nc, bucket, built);
    out.result(`${name} published to ${bucket} (sha256 ${built.manifest.bundle.sha256})`, { handler: name, bucket, sha256: built.manifest.bundle.sha256 });
    return EXIT.ok;
  });
}
