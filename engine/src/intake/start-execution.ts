import { randomUUID } from "node:crypto";
import { endSpan, FmError, periodMs, startSpanFrom, traceparentOf, type FlowStart, type Span, type Subjects } from "@flowmonkey/shared";
import { advance, emit } from "../execution/advance.js";
import { Changes } from "../execution/changes.js";
import type { CompiledFlow, FlowRegistry } from "../flows/registry.js";
import { initialSteps } from "../scheduler/decide.js";
import type { CircuitBreakers } from "../scheduler/circuit-breakers.js";
import type { RateLimits } from "../scheduler/rate-limits.js";
import type { ExecutionState } from "../scheduler/state.js";
import { hasSqlState, type Db } from "../store/db.js";
import { idsByStartKey } from "../store/executions.js";
import { recordRejections, type Rejection } from "../store/rejections.js";
import { commitStartsOptimistically, DuplicateStartError, transition, type Committed } from "../store/transition.js";
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
  /** A sub-flow's start: this registry version of the flow (default: its latest). */
  flowVersion?: number | undefined;
  /** A sub-flow's start: the step attempt that starts it (engine-internal, never from the wire). */
  parent?: ExecutionState["parent"];
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
  try {
    return await startExecutionsOnce(env, requests, extraRejections, true);
  } catch (err) {
    // A flow registered anew since this engine last read its latest version: again, on a fresh read.
    if (isNewerFlow(err)) {
      env.registry.forgetLatest(requests.map((r) => r.flowId));
      return startExecutions(env, requests, extraRejections);
    }
    // A redelivered start (or a taken id) in the batch: again, the way that skips duplicates.
    if (!(err instanceof DuplicateStartError)) throw err;
    return startExecutionsOnce(env, requests, extraRejections, false);
  }
}

/** fm_check_latest_flows (migration 0016): a start was decided on a flow version no longer the latest. */
const isNewerFlow = (err: unknown) => hasSqlState(err, "FMF01");

async function startExecutionsOnce(
  env: StartEnv,
  requests: StartRequest[],
  extraRejections: Rejection[],
  optimistic: boolean,
): Promise<{ outcomes: StartOutcome[]; committed: Committed<void> }> {
  // Optimistic starts take the latest versions read before (the write checks they still are);
  // flows never read yet, and starts the locked way, read them now.
  const wanted = [...new Set(requests.filter((r) => r.flowVersion === undefined).map((r) => r.flowId))];
  const known = optimistic ? env.registry.knownLatest(wanted) : new Map<string, CompiledFlow>();
  const unknown = wanted.filter((flowId) => !known.has(flowId));
  const flows = new Map([...known, ...(unknown.length > 0 ? await env.registry.latest(unknown) : [])]);
  const pinned = new Map<string, CompiledFlow>();
  for (const r of requests) {
    if (r.flowVersion === undefined) continue;
    const key = `${r.flowId}@${r.flowVersion}`;
    if (!pinned.has(key)) await env.registry.get(r.flowId, r.flowVersion).then((f) => pinned.set(key, f), () => undefined);
  }
  const now = new Date();
  const out = new Changes();
  out.rejections.push(...extraRejections);
  const byKey = new Map<string, ExecutionState>();
  const outcomes: Array<StartOutcome | { pendingKey: string }> = [];
  const spans: Span[] = [];

  for (const request of requests) {
    const flow = request.flowVersion === undefined ? flows.get(request.flowId) : pinned.get(`${request.flowId}@${request.flowVersion}`);
    if (!flow) {
      const error = new FmError("FLOW_NOT_FOUND", `no flow "${request.flowId}"${request.flowVersion === undefined ? "" : ` version ${request.flowVersion}`} is registered`);
      out.rejections.push({ subject: request.subject, code: error.code, reason: error.message });
      outcomes.push({ error });
      continue;
    }
    const earlier = byKey.get(request.startKey);
    if (earlier && earlier.tenantId !== request.start.tenantId) {
      // The same key from another tenant in this very batch: refused as any taken id is.
      const error = startKeyTaken(request);
      out.rejections.push({ subject: request.subject, code: error.code, reason: error.message });
      outcomes.push({ error });
      continue;
    }
    if (!earlier) {
      const exec = newExecution(request, flow, env.defaultRegion, now);
      const span = startSpanFrom("flowmonkey.execution.start", request.traceparent, { "flowmonkey.flow_id": flow.flowId, "flowmonkey.execution_id": exec.id });
      spans.push(span);
      const traceparent = traceparentOf(span);
      if (traceparent) exec.traceparent = traceparent;
      byKey.set(request.startKey, exec);
      const retention = flow.definition.retention;
      out.created.push({ state: exec, startKey: request.startKey, retainMs: retention === undefined ? undefined : periodMs(retention) });
      if (request.flowVersion === undefined && known.has(flow.flowId) && !out.assumedLatest.some((f) => f.flowId === flow.flowId)) {
        out.assumedLatest.push({ flowId: flow.flowId, version: flow.version });
      }
      emit(exec, out, { subjects: env.subjects, now }, "started");
      await advance(exec, flow, out, { subjects: env.subjects, now, breakers: env.breakers, rates: env.rates });
    }
    outcomes.push({ pendingKey: request.startKey });
  }

  const commit = optimistic ? commitStartsOptimistically(env.db, out, env.vault) : transition(env.db, [], async () => undefined, out, env.vault);
  const committed = await commit.catch((err: unknown) => {
    for (const span of spans) endSpan(span, err);
    throw err;
  });
  for (const span of spans) endSpan(span);
  const duplicates = [...byKey].filter(([, exec]) => !committed.created.has(exec.id)).map(([key]) => key);
  const existing = duplicates.length ? await idsByStartKey(env.db, duplicates) : new Map<string, { id: string; tenantId: string | undefined }>();
  const resolved = outcomes.map((o, i): StartOutcome => {
    if (!("pendingKey" in o)) return o;
    const exec = byKey.get(o.pendingKey)!;
    if (committed.created.has(exec.id)) return { executionId: exec.id, created: true };
    const first = existing.get(o.pendingKey);
    // The same start again (same key, same tenant): the execution it created the first time.
    if (first && first.tenantId === exec.tenantId) return { executionId: first.id, created: false };
    // Another tenant's start with this key, or the id taken by another start: one answer for
    // both, so that a tenant cannot tell another tenant's execution ids from any other taken id.
    return { error: startKeyTaken(requests[i]!) };
  });
  // Recorded like every refused start (only collisions cost this write: it is off the usual path).
  // Not allowed to fail the batch, which is committed: the intake's log line is then the record.
  await recordRejections(
    env.db,
    resolved.flatMap((o, i) => ("error" in o && "pendingKey" in outcomes[i]! ? [{ subject: requests[i]!.subject, code: o.error.code, reason: o.error.message }] : [])),
  ).catch(() => undefined);
  return { outcomes: resolved, committed };
}

/**
 * The refusal of a start whose key another start holds: its execution id (or its Nats-Msg-Id)
 * is taken — by an earlier start of another tenant, or of the same tenant under another key.
 * Deliberately the same code and words whoever holds it: ids are global, and a refusal is all
 * a tenant learns about an id it did not create (docs/PROTOCOL.md, "What execution ids reveal").
 */
function startKeyTaken(request: StartRequest): FmError {
  return request.start.executionId
    ? new FmError("INVALID_STATE", `execution id ${request.start.executionId} cannot be used: it is taken; choose another, or leave executionId out for a fresh one`)
    : new FmError("INVALID_STATE", "this start's Nats-Msg-Id was used by another start; use a new one for a new start");
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
    ...(request.parent ? { parent: request.parent } : {}),
    createdAt: at,
    updatedAt: at,
  };
}
