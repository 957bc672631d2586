import type { FlowSummary } from "@flowmonkey/shared";
import type { Db } from "./db.js";

export interface FlowRow {
  flow_id: string;
  version: number;
  definition: unknown;
}

export async function putFlowVersion(
  db: Db,
  flowId: string,
  definition: unknown,
  hash: string,
  label: string | undefined,
): Promise<{ flowId: string; version: number; created: boolean }> {
  return db.tx(async (q) => {
    // Serializes registrations of one flow id across replicas, so versions stay dense.
    await q.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`flow:${flowId}`]);
    const { rows } = await q.query<{ version: number; hash: string }>(
      "SELECT version, hash FROM flows WHERE flow_id = $1 ORDER BY version DESC LIMIT 1",
      [flowId],
    );
    const latest = rows[0];
    if (latest && latest.hash === hash) return { flowId, version: latest.version, created: false };
    const version = (latest?.version ?? 0) + 1;
    await q.query("INSERT INTO flows (flow_id, version, label, definition, hash) VALUES ($1, $2, $3, $4::jsonb, $5)", [
      flowId,
      version,
      label ?? null,
      JSON.stringify(definition),
      hash,
    ]);
    return { flowId, version, created: true };
  });
}

export async function getFlowVersion(db: Db, flowId: string, version: number): Promise<FlowRow | undefined> {
  const { rows } = await db.query<FlowRow>("SELECT flow_id, version, definition FROM flows WHERE flow_id = $1 AND version = $2", [
    flowId,
    version,
  ]);
  return rows[0];
}

export async function latestFlowVersions(db: Db, flowIds: string[]): Promise<FlowRow[]> {
  if (flowIds.length === 0) return [];
  const { rows } = await db.query<FlowRow>(
    `SELECT DISTINCT ON (flow_id) flow_id, version, definition
       FROM flows WHERE flow_id = ANY($1::text[]) ORDER BY flow_id, version DESC`,
    [flowIds],
  );
  return rows;
}

export async function listFlows(db: Db, flowId?: string): Promise<FlowSummary[]> {
  const { rows } = await db.query<{
    flow_id: string;
    version: number;
    label: string | null;
    name: string | null;
    example: unknown;
    steps: number;
    created_at: Date;
  }>(
    `SELECT flow_id, version, label, definition->>'name' AS name, definition->'example' AS example,
            jsonb_array_length(definition->'steps')::int AS steps, created_at
       FROM flows WHERE ($1::text IS NULL OR flow_id = $1) ORDER BY flow_id, version DESC`,
    [flowId ?? null],
  );
  return rows.map((r) => ({
    flowId: r.flow_id,
    version: r.version,
    ...(r.label ? { label: r.label } : {}),
    ...(r.name ? { name: r.name } : {}),
    ...(r.example === null || r.example === undefined ? {} : { example: r.example }),
    steps: r.steps,
    createdAt: new Date(r.created_at).toISOString(),
  }));
}
