import { randomUUID } from "node:crypto";
import { endSpan, FmError, startSpanFrom, traceparentOf, type FlowStart, type Span, type Subjects } from "@flowmonkey/shared";
import { advance, emit } from "../execution/advance.js";
import { Changes } from "../execution/changes.js";
import type { CompiledFlow, FlowRegistry } from "../flows/registry.js";
import { initialSteps } from "../scheduler/decide.js";
import type { CircuitBreakers } from "../scheduler/circuit-breakers.js";
import type { RateLimits } from "../scheduler/rate-limits.js";
import type { ExecutionState } from "../scheduler/state.js";
import type { Db } from "../store/db.js";
import { idsByStartKey } from "../store/executions.js";
import type { Rejection } from "../store/rejections.js";
import { transition, type Committed } from "../store/transition.js";
import type { Vault } from "../vault/vault.js";

export interface StartRequest {
  flowId: string;
  start: FlowStart;
  /** What makes two deliveries the same start: executionId, Nats-Msg-Id or stream position. */
  startKey: string;
  /** Recorded with a rejection. */
  subject: string;
  /** The starter's span (W3C traceparent header), parent of the execution's. */
  traceparent?: string;
}

export type StartOutcome = { executionId: string; created: boolean } | { error: FmError };

export interface StartEnv {
  db: Db;
  registry: FlowRegistry;
  subjects: Subjects;
  defaultRegion: string;
  breakers?: CircuitBreakers | undefined;
  rates?: RateLimits | undefined;
  vault?: Vault | undefined;
}

/**
 * Starts a batch of executions in one transaction: each gets its row, its first steps
 * dispatched through the outbox, and a `started` event. A start key seen before creates
 * nothing and answers with the execution it created the first time.
 */
export async function startExecutions(
  env: StartEnv,
  requests: StartRequest[],
  extraRejections: Rejection[] = [],
): Promise<{ outcomes: StartOutcome[]; committed: Committed<void> }> {
  const flows = await env.registry.latest([...new Set(requests.map((r) => r.flowId))]);
  const now = new Date();
  const out = new Changes();
  out.rejections.push(...extraRejections);
  const byKey = new Map<string, ExecutionState>();
  const outcomes: Array<StartOutcome | { pendingKey: string }> = [];
  const spans: Span[] = [];

  for (const request of requests) {
    const flow = flows.get(request.flowId);
    if (!flow) {
      const error = new FmError("FLOW_NOT_FOUND", `no flow "${request.flowId}" is registered`);
      out.rejections.push({ subject: request.subject, code: error.code, reason: error.message });
      outcomes.push({ error });
      continue;
    }
    if (!byKey.has(request.startKey)) {
      const exec = newExecution(request, flow, env.defaultRegion, now);
      const span = startSpanFrom("flowmonkey.execution.start", request.traceparent, { "flowmonkey.flow_id": flow.flowId, "flowmonkey.execution_id": exec.id });
      spans.push(span);
      const traceparent = traceparentOf(span);
      if (traceparent) exec.traceparent = traceparent;
      byKey.set(request.startKey, exec);
      out.created.push({ state: exec, startKey: request.startKey });
      emit(exec, out, { subjects: env.subjects, now }, "started");
      await advance(exec, flow, out, { subjects: env.subjects, now, breakers: env.breakers, rates: env.rates });
    }
    outcomes.push({ pendingKey: request.startKey });
  }

  const committed = await transition(env.db, [], async () => undefined, out, env.vault).catch((err: unknown) => {
    for (const span of spans) endSpan(span, err);
    throw err;
  });
  for (const span of spans) endSpan(span);
  const duplicates = [...byKey].filter(([, exec]) => !committed.created.has(exec.id)).map(([key]) => key);
  const existing = duplicates.length ? await idsByStartKey(env.db, duplicates) : new Map<string, string>();
  const resolved = outcomes.map((o): StartOutcome => {
    if (!("pendingKey" in o)) return o;
    const exec = byKey.get(o.pendingKey)!;
    if (committed.created.has(exec.id)) return { executionId: exec.id, created: true };
    const id = existing.get(o.pendingKey);
    // Same key, different row: the execution id itself was taken by another start.
    return id
      ? { executionId: id, created: false }
      : { error: new FmError("INVALID_STATE", `execution id ${exec.id} is already used by another start`) };
  });
  return { outcomes: resolved, committed };
}

function newExecution(request: StartRequest, flow: CompiledFlow, defaultRegion: string, now: Date): ExecutionState {
  const { start } = request;
  const at = now.toISOString();
  return {
    id: start.executionId ?? randomUUID(),
    flowId: flow.flowId,
    flowVersion: flow.version,
    status: "running",
    input: start.input,
    context: start.context ?? {},
    ...(start.tenantId ? { tenantId: start.tenantId } : {}),
    region: start.region ?? flow.definition.defaults?.region ?? defaultRegion,
    priority: start.priority ?? flow.definition.defaults?.priority ?? "normal",
    ...(start.labels ? { labels: start.labels } : {}),
    steps: initialSteps(flow.graph),
    createdAt: at,
    updatedAt: at,
  };
}
