import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { z } from "zod";
import { EXIT } from "@flowmonkey/shared";
import { parseArg, parseCommand, UsageError } from "../args.js";
import { printHelp, type Output } from "../output.js";

export const natsCertsUsage = "nats certs <dir> [<server>[,<alias>...] ...] [--roles <role>,...] [--days <n>] [--json]";

const HostName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9.-]*$/, "letters, digits, '.' and '-', starting with a letter or digit");
const Names = z.string().transform((s) => s.split(",")).pipe(z.array(HostName).min(1));
const Days = z.coerce.number().int().min(1).max(3650);

/**
 * The project's certificate maker (scripts/certs, openssl): shipped next to the CLI's code by
 * the build (scripts/copy-assets.mjs), and found in the repository when run from it.
 */
function certsScript(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, "../../scripts/certs"), join(here, "../../../../scripts/certs")];
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new UsageError(`the certificate script is not installed next to the CLI (looked in ${candidates.join(", ")})`, "INTERNAL");
  return found;
}

/**
 * `flowmonkey nats certs`: makes a mesh's TLS material — a CA, a certificate per NATS server and
 * one per role (engine, gateway, sys, worker-<region>) — with openssl. A role's certificate is its
 * credential: the shipped configs map it to the user it names (no passwords). An existing CA in
 * <dir> is reused and existing certificates are kept; keys are readable by their owner only.
 */
export async function natsCertsCommand(argv: string[], out: Output): Promise<number> {
  const cmd = parseCommand(argv, { usage: natsCertsUsage, options: { roles: { type: "string" }, days: { type: "string" } }, positionals: { min: 1 } });
  if (cmd === "help") {
    return printHelp(out, natsCertsUsage, [
      "Makes (or completes) the TLS material of a mesh in <dir> with openssl: ca.pem, and per server",
      "and per role <name>.pem and <name>-key.pem. Servers default to the compose host names (hub,",
      "hub-1..3, leaf-eu-west-1, leaf-ap-south-1); roles to engine, gateway, sys and a worker per",
      "shipped region. A role's certificate is its login: keep each key with the process it names,",
      "and ca-key.pem on the machine that signs.",
    ]);
  }
  const [dir, ...servers] = cmd.positionals as [string, ...string[]];
  if (dir.trim() === "") throw new UsageError("the directory is empty");
  for (const s of servers) parseArg(Names, s, "server names");
  const roles = cmd.string("roles");
  const days = cmd.string("days");
  const args = [
    ...(roles === undefined ? [] : ["--roles", parseArg(Names, roles, "--roles").join(",")]),
    ...(days === undefined ? [] : ["--days", String(parseArg(Days, days, "--days"))]),
    "--",
    resolve(dir),
    ...servers,
  ];
  try {
    const { stdout } = await promisify(execFile)("bash", [certsScript(), ...args], { maxBuffer: 4 * 1024 * 1024 });
    const written = stdout.split("\n").filter((l) => l.trim() !== "");
    out.result(written.length > 0 ? written : [`certificates in ${resolve(dir)}`], { dir: resolve(dir), output: written });
    return EXIT.ok;
  } catch (err) {
    const failed = err as { code?: number; stderr?: string; message: string };
    out.error("CERTS_FAILED", (failed.stderr ?? "").trim() || failed.message);
    return failed.code === 2 ? EXIT.config : EXIT.failed;
  }
}
