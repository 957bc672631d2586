import { createHash } from "node:crypto";
import { buildGraph, FlowDefinition, FmError, parseWith, type FlowGraph, type FlowSummary } from "@flowmonkey/shared";
import * as flowsStore from "../store/flows.js";
import type { Db } from "../store/db.js";
import { checkTemplates } from "./expressions.js";

/** A registered flow version with its graph resolved once. */
export interface CompiledFlow {
  flowId: string;
  version: number;
  definition: FlowDefinition;
  graph: FlowGraph;
}

export type FlowRegistry = ReturnType<typeof createFlowRegistry>;

/**
 * Flow definitions by id and version. Versions are immutable, so they are cached forever.
 * "Latest" is read from the database by latest(); knownLatest() answers the latest versions
 * read before, which another replica may have superseded since: a start decided on one has the
 * write check it (Changes.assumedLatest), and forgetLatest() drops what proved out of date.
 */
export function createFlowRegistry(db: Db) {
  const cache = new Map<string, CompiledFlow>();
  const latestSeen = new Map<string, CompiledFlow>();
  const key = (flowId: string, version: number) => `${flowId}@${version}`;

  const compileRow = (row: flowsStore.FlowRow): CompiledFlow => {
    const cached = cache.get(key(row.flow_id, row.version));
    if (cached) return cached;
    const definition = parseWith(FlowDefinition, row.definition, `stored flow ${row.flow_id}@${row.version}`);
    const compiled = { flowId: row.flow_id, version: row.version, definition, graph: buildGraph(definition) };
    cache.set(key(row.flow_id, row.version), compiled);
    return compiled;
  };

  return {
    /** Registers a definition; a new version only when its content changed. */
    async put(raw: unknown): Promise<{ flowId: string; version: number; created: boolean }> {
      let definition: FlowDefinition;
      try {
        definition = parseWith(FlowDefinition, raw, "flow definition");
        buildGraph(definition);
        checkTemplates(definition);
      } catch (err) {
        // Same code as the file loader's: a definition that cannot be registered is INVALID_FLOW.
        if (err instanceof FmError) throw new FmError("INVALID_FLOW", err.message, { details: err.details });
        throw err;
      }
      const hash = createHash("sha256").update(stableJson(definition)).digest("hex");
      const put = await flowsStore.putFlowVersion(db, definition.id, definition, hash, definition.version);
      latestSeen.delete(definition.id);
      return put;
    },

    async get(flowId: string, version: number): Promise<CompiledFlow> {
      const cached = cache.get(key(flowId, version));
      if (cached) return cached;
      const row = await flowsStore.getFlowVersion(db, flowId, version);
      if (!row) throw new FmError("FLOW_NOT_FOUND", `flow ${flowId} has no version ${version}`);
      return compileRow(row);
    },

    /** Latest versions of several flows in one query; unknown ids are absent from the map. */
    async latest(flowIds: string[]): Promise<Map<string, CompiledFlow>> {
      const rows = await flowsStore.latestFlowVersions(db, flowIds);
      const found = new Map(rows.map((row) => [row.flow_id, compileRow(row)]));
      for (const [flowId, flow] of found) latestSeen.set(flowId, flow);
      return found;
    },

    /** The latest versions latest() last read of these flows; the others are absent. */
    knownLatest(flowIds: string[]): Map<string, CompiledFlow> {
      const known = new Map<string, CompiledFlow>();
      for (const flowId of flowIds) {
        const flow = latestSeen.get(flowId);
        if (flow) known.set(flowId, flow);
      }
      return known;
    },

    forgetLatest(flowIds: Iterable<string>): void {
      for (const flowId of flowIds) latestSeen.delete(flowId);
    },

    async list(flowId?: string): Promise<FlowSummary[]> {
      return flowsStore.listFlows(db, flowId);
    },
  };
}

/** JSON with sorted keys, so that the same definition always hashes the same. */
function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : 1));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}
