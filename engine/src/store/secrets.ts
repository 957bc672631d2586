import type { SealedAtRest } from "../vault/at-rest.js";
import type { Queryable } from "./db.js";

/**
 * The vault's rows: secrets as AES-GCM ciphertext (never plaintext), and the audit trail of
 * every time the engine handed one to a task. Binary columns cross the driver as base64 text,
 * so node-postgres and PGlite read and write them alike.
 */

export interface StoredSecret extends SealedAtRest {
  tenantId: string;
  key: string;
}

export async function putSecret(q: Queryable, secret: StoredSecret): Promise<{ created: boolean; updatedAt: string }> {
  const { rows } = await q.query<{ created: boolean; updated_at: Date | string }>(
    `INSERT INTO secrets (tenant_id, key, ciphertext, nonce, key_id)
     VALUES ($1, $2, decode($3, 'base64'), decode($4, 'base64'), $5)
     ON CONFLICT (tenant_id, key) DO UPDATE
       SET ciphertext = excluded.ciphertext, nonce = excluded.nonce, key_id = excluded.key_id, updated_at = now()
     RETURNING (xmax = 0) AS created, updated_at`,
    [secret.tenantId, secret.key, secret.ciphertext.toString("base64"), secret.nonce.toString("base64"), secret.keyId],
  );
  const row = rows[0]!;
  return { created: row.created, updatedAt: new Date(row.updated_at).toISOString() };
}

export async function listSecretKeys(q: Queryable, tenantId: string): Promise<Array<{ key: string; createdAt: string; updatedAt: string }>> {
  const { rows } = await q.query<{ key: string; created_at: Date | string; updated_at: Date | string }>(
    "SELECT key, created_at, updated_at FROM secrets WHERE tenant_id = $1 ORDER BY key",
    [tenantId],
  );
  return rows.map((r) => ({ key: r.key, createdAt: new Date(r.created_at).toISOString(), updatedAt: new Date(r.updated_at).toISOString() }));
}

/** Deletes one secret; whether it existed. */
export async function deleteSecret(q: Queryable, tenantId: string, key: string): Promise<boolean> {
  const { rowCount } = await q.query("DELETE FROM secrets WHERE tenant_id = $1 AND key = $2", [tenantId, key]);
  return (rowCount ?? 0) > 0;
}

/**
 * Up to `limit` rows encrypted with another key than `keyId`, locked for re-encryption (rows
 * another engine is rotating are skipped, not waited for).
 */
export async function lockSecretsToRotate(q: Queryable, keyId: string, limit: number): Promise<StoredSecret[]> {
  const { rows } = await q.query<{ tenant_id: string; key: string; ciphertext: string; nonce: string; key_id: string }>(
    `SELECT tenant_id, key, encode(ciphertext, 'base64') AS ciphertext, encode(nonce, 'base64') AS nonce, key_id
       FROM secrets WHERE key_id <> $1 ORDER BY tenant_id, key LIMIT $2 FOR UPDATE SKIP LOCKED`,
    [keyId, limit],
  );
  return rows.map(storedOf);
}

/** Replaces a row's ciphertext in place (a rotation: its updated_at is left alone, its value did not change). */
export async function rewrapSecret(q: Queryable, secret: StoredSecret): Promise<void> {
  await q.query(
    "UPDATE secrets SET ciphertext = decode($3, 'base64'), nonce = decode($4, 'base64'), key_id = $5 WHERE tenant_id = $1 AND key = $2",
    [secret.tenantId, secret.key, secret.ciphertext.toString("base64"), secret.nonce.toString("base64"), secret.keyId],
  );
}

/** How many rows are encrypted with another key than `keyId`. */
export async function countSecretsNotUnder(q: Queryable, keyId: string): Promise<number> {
  const { rows } = await q.query<{ n: number }>("SELECT count(*)::int AS n FROM secrets WHERE key_id <> $1", [keyId]);
  return rows[0]?.n ?? 0;
}

const storedOf = (r: { tenant_id: string; key: string; ciphertext: string; nonce: string; key_id: string }): StoredSecret => ({
  tenantId: r.tenant_id,
  key: r.key,
  ciphertext: Buffer.from(r.ciphertext, "base64"),
  nonce: Buffer.from(r.nonce, "base64"),
  keyId: r.key_id,
});

/** The rows of these (tenant, key) pairs that exist, in one statement whatever their number. */
export async function readSecrets(q: Queryable, wanted: Array<{ tenantId: string; key: string }>): Promise<StoredSecret[]> {
  if (wanted.length === 0) return [];
  const { rows } = await q.query<{ tenant_id: string; key: string; ciphertext: string; nonce: string; key_id: string }>(
    `SELECT s.tenant_id, s.key, encode(s.ciphertext, 'base64') AS ciphertext, encode(s.nonce, 'base64') AS nonce, s.key_id
       FROM secrets s
       JOIN unnest($1::text[], $2::text[]) AS w(tenant_id, key) ON s.tenant_id = w.tenant_id AND s.key = w.key`,
    [wanted.map((w) => w.tenantId), wanted.map((w) => w.key)],
    "fm_read_secrets",
  );
  return rows.map(storedOf);
}

/** One secret handed to (or refused to) one task attempt. */
export interface SecretAccessRow {
  executionId: string;
  stepId: string;
  attempt: number;
  tenantId: string;
  key: string;
  /** `<region>/<handler>` the value was sealed for. */
  pool: string;
  /** `sealed`, or the error code that refused it. */
  outcome: string;
}

export async function insertSecretAccess(q: Queryable, rows: SecretAccessRow[]): Promise<void> {
  if (rows.length === 0) return;
  await q.query(
    `INSERT INTO secret_access (execution_id, step_id, attempt, tenant_id, key, pool, outcome)
     SELECT x."executionId", x."stepId", x.attempt, x."tenantId", x.key, x.pool, x.outcome
       FROM jsonb_to_recordset($1::jsonb) AS x("executionId" text, "stepId" text, attempt int, "tenantId" text, key text, pool text, outcome text)`,
    [JSON.stringify(rows)],
    "fm_insert_secret_access",
  );
}
