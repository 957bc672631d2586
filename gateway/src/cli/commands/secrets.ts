import { EXIT, MAX_SECRET_BYTES, SecretKeyName, VaultTenant } from "@flowmonkey/shared";
import { parseArg, parseCommand, UsageError } from "../args.js";
import { printHelp, type Output } from "../output.js";
import { withSession } from "../session.js";

export const secretsPutUsage = "secrets put <key> [--tenant <id>] (--from-stdin | --value <v>) [--json]";
export const secretsLsUsage = "secrets ls [--tenant <id>] [--json]";
export const secretsKeygenUsage = "secrets keygen [--json]";
export const secretsRmUsage = "secrets rm <key> [--tenant <id>] [--json]";
export const secretsRotateUsage = "secrets rotate [--json]";

/**
 * `flowmonkey secrets put`: stores one secret in the engine's vault, encrypted at rest. The
 * value comes from stdin (preferred: it stays out of shell history and `ps`) or --value; it is
 * never printed back.
 */
export async function secretsPutCommand(argv: string[], out: Output, stdin: () => Promise<string> = readStdin): Promise<number> {
  const cmd = parseCommand(argv, {
    usage: secretsPutUsage,
    options: { tenant: { type: "string" }, value: { type: "string" }, "from-stdin": { type: "boolean" } },
    positionals: { min: 1, max: 1 },
  });
  if (cmd === "help") {
    return printHelp(out, secretsPutUsage, [
      "Stores (or replaces) the secret <key> of a tenant (none: executions without a tenant).",
      "A step receives it only if it lists the key under `vault:`, sealed for its worker pool.",
      "--from-stdin reads the value from standard input (one trailing newline is dropped);",
      "--value puts it on the command line, where shell history and `ps` can see it.",
    ]);
  }
  const key = parseArg(SecretKeyName, cmd.positionals[0], "secret key");
  const tenantId = parseArg(VaultTenant, cmd.string("tenant"), "--tenant");
  const given = cmd.string("value");
  if ((given === undefined) === !cmd.boolean("from-stdin")) throw new UsageError(`give the value with exactly one of --from-stdin or --value\nusage: flowmonkey ${secretsPutUsage}`);
  const value = given ?? (await stdin()).replace(/\r?\n$/, "");
  if (value === "") throw new UsageError("the secret's value is empty");
  if (Buffer.byteLength(value, "utf8") > MAX_SECRET_BYTES) throw new UsageError(`the secret's value is larger than ${MAX_SECRET_BYTES} bytes`);

  return withSession(cmd.config, async ({ api }) => {
    const reply = await api.putSecret({ tenantId, key, value });
    const whose = reply.tenantId === "" ? "(no tenant)" : `tenant ${reply.tenantId}`;
    out.result(`${reply.key} ${reply.created ? "stored" : "replaced"} for ${whose}`, reply);
    return EXIT.ok;
  });
}

/** `flowmonkey secrets ls`: a tenant's secret names and when they changed; never values. */
export async function secretsLsCommand(argv: string[], out: Output): Promise<number> {
  const cmd = parseCommand(argv, { usage: secretsLsUsage, options: { tenant: { type: "string" } } });
  if (cmd === "help") return printHelp(out, secretsLsUsage, [`Lists the names of a tenant's secrets (never their values).`]);
  const tenantId = parseArg(VaultTenant, cmd.string("tenant"), "--tenant");
  return withSession(cmd.config, async ({ api }) => {
    const reply = await api.listSecrets(tenantId);
    const lines = reply.secrets.length === 0 ? ["no secrets"] : reply.secrets.map((s) => `${s.key}  (updated ${s.updatedAt})`);
    out.result(lines, reply);
    return EXIT.ok;
  });
}

/** `flowmonkey secrets rm`: forgets one secret of a tenant. */
export async function secretsRmCommand(argv: string[], out: Output): Promise<number> {
  const cmd = parseCommand(argv, { usage: secretsRmUsage, options: { tenant: { type: "string" } }, positionals: { min: 1, max: 1 } });
  if (cmd === "help") return printHelp(out, secretsRmUsage, ["Deletes the secret <key> of a tenant; steps that list it then fail with VAULT_KEY_NOT_FOUND."]);
  const key = parseArg(SecretKeyName, cmd.positionals[0], "secret key");
  const tenantId = parseArg(VaultTenant, cmd.string("tenant"), "--tenant");
  return withSession(cmd.config, async ({ api }) => {
    const reply = await api.deleteSecret({ tenantId, key });
    const whose = reply.tenantId === "" ? "(no tenant)" : `tenant ${reply.tenantId}`;
    out.result(reply.deleted ? `${reply.key} deleted for ${whose}` : `${reply.key}: no such secret for ${whose}`, reply);
    return reply.deleted ? EXIT.ok : EXIT.failed;
  });
}

/**
 * `flowmonkey secrets rotate`: after FM_VAULT_KEY changed (the old key moved to
 * FM_VAULT_PREVIOUS_KEYS), re-encrypts every secret under the new key, a batch per request,
 * until none is left under an old one. Safe to stop and run again.
 */
export async function secretsRotateCommand(argv: string[], out: Output): Promise<number> {
  const cmd = parseCommand(argv, { usage: secretsRotateUsage });
  if (cmd === "help") {
    return printHelp(out, secretsRotateUsage, [
      "Re-encrypts every secret still under a previous vault key (FM_VAULT_PREVIOUS_KEYS) with FM_VAULT_KEY.",
      "When it reports 0 remaining, the previous keys may be removed from the engines' configuration.",
    ]);
  }
  return withSession(cmd.config, async ({ api }) => {
    let rotated = 0;
    for (;;) {
      const reply = await api.rotateSecrets({ limit: 200 });
      rotated += reply.rotated;
      // Done, or only rows this engine cannot read are left (their key is neither current nor previous).
      if (reply.remaining === 0 || reply.rotated === 0) {
        const lines = [`${rotated} secret(s) re-encrypted under vault key ${reply.keyId}; ${reply.remaining} remaining`];
        for (const u of reply.unreadable) lines.push(`cannot read ${u.tenantId || "(no tenant)"}/${u.key}: under vault key ${u.keyId}, which this engine does not have`);
        out.result(lines, { ...reply, rotated });
        return reply.remaining === 0 ? EXIT.ok : EXIT.failed;
      }
    }
  });
}

/**
 * `flowmonkey secrets keygen`: a new X25519 key pair for a worker pool. The public key goes
 * into the engine's FM_VAULT_POOL_KEYS, the private key into that pool's workers'
 * FM_VAULT_PRIVATE_KEY; nothing is sent anywhere. Needs no NATS.
 */
export async function secretsKeygenCommand(argv: string[], out: Output): Promise<number> {
  const cmd = parseCommand(argv, { usage: secretsKeygenUsage });
  if (cmd === "help") return printHelp(out, secretsKeygenUsage, [`Prints a new key pair for a worker pool's vault.`]);
  // Loaded here only: libsodium takes ~30 ms to start, which no other command should pay.
  const { generatePoolKeyPair, toBase64, wipe } = await import("@flowmonkey/shared/vault");
  const pair = generatePoolKeyPair();
  const keys = { publicKey: toBase64(pair.publicKey), privateKey: toBase64(pair.privateKey) };
  wipe(pair.privateKey);
  out.result(
    [
      `public key  (engine, FM_VAULT_POOL_KEYS):  ${keys.publicKey}`,
      `private key (workers, FM_VAULT_PRIVATE_KEY): ${keys.privateKey}`,
    ],
    keys,
  );
  return EXIT.ok;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks).toString("utf8");
}
