import { poolToken, type DeadTaskSummary, type DlqReplayReply, type ExecutionView, type LanesReply, type QueuesReply, type StepView, type UsageReply, type WorkersReply } from "@flowmonkey/shared";

/**
 * Text renderings of executions (`status`, `watch`), dead letters (`dlq`) and lanes (`lanes`);
 * pure, so they are easy to test.
 */

export interface StepProgress {
  percent: number;
  message?: string | undefined;
}

const DONE_STEP = new Set(["completed", "skipped", "failed", "cancelled"]);

const SYMBOL: Record<string, string> = {
  pending: "·",
  dispatched: "▶",
  waiting: "⏸",
  completed: "✔",
  failed: "✘",
  skipped: "↷",
  cancelled: "■",
  running: "▶",
};

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const minutes = Math.floor(ms / 60_000);
  return `${minutes}m${Math.round((ms % 60_000) / 1000)}s`;
}

function stepDuration(step: StepView, now: number): string {
  if (!step.startedAt) return "";
  const end = step.completedAt ? Date.parse(step.completedAt) : now;
  return formatDuration(end - Date.parse(step.startedAt));
}

/** `[██████░░░░]  60%` */
export function progressBar(percent: number, width = 20): string {
  const p = Math.max(0, Math.min(100, percent));
  const filled = Math.round((p / 100) * width);
  return `[${"█".repeat(filled)}${"░".repeat(width - filled)}] ${String(Math.round(p)).padStart(3)}%`;
}

function stepDetail(step: StepView): string {
  if (step.error) return `${step.error.code}: ${step.error.message}`;
  if (step.output === undefined || step.output === null) return "";
  const text = JSON.stringify(step.output);
  return text.length > 60 ? `${text.slice(0, 59)}…` : text;
}

export function executionHeadline(view: ExecutionView): string {
  return `${view.id}  ${view.flowId} v${view.flowVersion}  ${SYMBOL[view.status] ?? ""} ${view.status}  (region ${view.region})`;
}

/**
 * What a step is waiting on, in words, for `status`: a dispatched step whose pool has no live
 * worker (it would hang silently otherwise), a waiting step's resume token and event.
 * `serves(region, handler)` answers from the live workers (KV fm_workers).
 */
export function stepNotes(
  view: ExecutionView,
  serves: (region: string, handler: string) => boolean,
  /** Why a lane (`<region>/<handler>`) holds its tasks back, if it does: "paused", "circuit open". */
  laneHeld: (lane: string) => string | undefined = () => undefined,
): string[] {
  const notes: string[] = [];
  for (const s of view.steps) {
    if (s.status === "dispatched") {
      const region = s.history?.at(-1)?.region ?? view.region;
      const held = laneHeld(`${region}/${s.handler}`);
      if (held) notes.push(`${s.stepId}: waiting for a worker of ${s.handler} in ${region}: ${held}`);
      else if (!serves(region, s.handler)) notes.push(`${s.stepId}: waiting for a worker of ${s.handler} in ${region}: none registered`);
    } else if (s.status === "waiting" && s.wait) {
      const on = [`resume token ${s.wait.resumeToken}`, s.wait.resumeOn ? `or event ${s.wait.resumeOn.event}` : "", s.wait.waitUntil ? `until ${s.wait.waitUntil}` : ""];
      notes.push(`${s.stepId}: waiting (${on.filter(Boolean).join(", ")})${s.wait.reason ? `: ${s.wait.reason}` : ""}`);
    }
  }
  return notes;
}

/** Header and rows for a table of steps (status). */
export function stepRows(view: ExecutionView, now = Date.now()): { headers: string[]; rows: string[][] } {
  return {
    headers: ["STEP", "HANDLER", "STATUS", "ATTEMPTS", "DURATION", "OUTPUT / ERROR"],
    rows: view.steps.map((s) => [
      s.stepId,
      s.handler,
      `${SYMBOL[s.status] ?? ""} ${s.status}`,
      String(s.attempts),
      stepDuration(s, now),
      stepDetail(s),
    ]),
  };
}

/** Lines for `watch`: one per step with a progress bar fed by fm.progress. */
export function progressLines(view: ExecutionView, progress: ReadonlyMap<string, StepProgress>): string[] {
  const idWidth = Math.max(4, ...view.steps.map((s) => s.stepId.length));
  const lines = [executionHeadline(view)];
  for (const s of view.steps) {
    const p = progress.get(s.stepId);
    const percent = DONE_STEP.has(s.status) ? 100 : s.status === "pending" ? 0 : (p?.percent ?? 0);
    const note = s.error ? `${s.error.code}: ${s.error.message}` : s.status === "dispatched" ? (p?.message ?? "") : "";
    lines.push(
      `  ${s.stepId.padEnd(idWidth)}  ${(SYMBOL[s.status] ?? "") + " " + s.status.padEnd(10)}  ${progressBar(percent)}  ${note}`.trimEnd(),
    );
  }
  return lines;
}

/** Header and rows for a table of dead-lettered tasks (`dlq ls`); `replayed` adds a column for `--all`. */
export function deadTaskRows(deadTasks: DeadTaskSummary[], options: { replayed?: boolean } = {}): { headers: string[]; rows: string[][] } {
  const headers = ["ID", "REASON", "DELIVERIES", "LAST ERROR", "AT"];
  if (options.replayed) headers.push("REPLAYED");
  return {
    headers,
    rows: deadTasks.map((d) => {
      const row = [d.id, d.reason, String(d.deliveries), d.lastError?.code ?? "", d.at];
      if (options.replayed) row.push(d.replayedAt ?? "");
      return row;
    }),
  };
}

/** Lines for `dlq replay`: one per id, replayed first, each refusal with its code and why. */
export function replayLines(reply: DlqReplayReply): string[] {
  return [
    ...reply.replayed.map((id) => `replayed  ${id}`),
    ...reply.refused.map((r) => `refused   ${r.id}  ${r.code}: ${r.message}`),
  ];
}

type Table = { headers: string[]; rows: string[][] };

/** Header and rows for a table of circuits (`lanes`): failures out of results in the window, and until when an open one holds tasks. */
export function circuitRows(circuits: LanesReply["circuits"], now = Date.now()): Table {
  return {
    headers: ["LANE", "STATE", "FAILURES", "OPEN UNTIL"],
    rows: circuits.map((c) => {
      const until = c.openUntil ? Date.parse(c.openUntil) : undefined;
      const openUntil = c.openUntil === undefined ? "" : until! > now ? `${c.openUntil} (in ${formatDuration(until! - now)})` : c.openUntil;
      return [c.lane, c.state, `${c.failures}/${c.results}`, openUntil];
    }),
  };
}

/** Header and rows for a table of tenants' lanes (`lanes`): attempts in flight, waiting in the engine, and the tenant's cap. */
export function tenantLaneRows(tenants: LanesReply["tenants"]): Table {
  return {
    headers: ["TENANT", "LANE", "IN FLIGHT", "QUEUED", "CAP"],
    rows: tenants.map((t) => [t.tenantId, t.lane, String(t.inFlight), String(t.queued), String(t.maxInFlight)]),
  };
}

/**
 * Lines for `lanes`: a titled table of circuits, then one of tenants' lanes, with `table` laying
 * each out (Output.table); a section with nothing in it is one line, both empty is one line.
 */
export function lanesLines(
  reply: Pick<LanesReply, "circuits" | "tenants"> & { rates?: LanesReply["rates"]; paused?: LanesReply["paused"] },
  table: (headers: string[], rows: string[][]) => string[],
  now = Date.now(),
): string[] {
  const rates = reply.rates ?? [];
  const paused = reply.paused ?? [];
  if (reply.circuits.length === 0 && reply.tenants.length === 0 && rates.length === 0 && paused.length === 0) return ["all lanes healthy"];
  const pausedLines =
    paused.length === 0
      ? []
      : [
          "paused (new tasks wait in the engine until `flowmonkey queues resume`):",
          ...table(
            ["LANE", "SINCE", "HELD", "REASON"],
            paused.map((p) => [p.lane, p.pausedAt, String(p.held), p.reason ?? ""]),
          ),
          "",
        ];
  const circuits = circuitRows(reply.circuits, now);
  const tenants = tenantLaneRows(reply.tenants);
  return [
    ...pausedLines,
    ...(reply.circuits.length === 0
      ? ["circuits: all closed (on the engine replica that answered)"]
      : ["circuits (on the engine replica that answered):", ...table(circuits.headers, circuits.rows)]),
    "",
    ...(reply.tenants.length === 0
      ? ["tenants: nothing in flight or queued"]
      : ["tenants:", ...table(tenants.headers, tenants.rows)]),
    ...(rates.length === 0
      ? []
      : [
          "",
          "rate limits (on the engine replica that answered):",
          ...table(
            ["KEY", "PER SECOND", "HELD UNTIL"],
            rates.map((r) => [r.key, String(r.perSecond), r.heldUntil ?? ""]),
          ),
        ]),
  ];
}

/** `flowmonkey usage`: a row per tenant and tier, then the tenant's total. */
export function usageLines(reply: UsageReply, table: (headers: string[], rows: string[][]) => string[]): string[] {
  const header = `usage from ${reply.from} to ${reply.to}`;
  if (reply.tenants.length === 0) return [header, "no task attempts ended in this period"];
  const rows = reply.tenants.flatMap((t) => {
    const tenant = t.tenantId ?? "(none)";
    const tiers = Object.entries(t.byTier).map(([tier, u]) => [tenant, tier, "", String(u.tasks), formatDuration(u.activeMs), formatDuration(u.pausedMs)]);
    return [...tiers, [tenant, "total", String(t.executions), String(t.tasks), formatDuration(t.activeMs), formatDuration(t.pausedMs)]];
  });
  return [header, ...table(["TENANT", "TIER", "EXECUTIONS", "TASKS", "ACTIVE", "PAUSED"], rows)];
}

/** `flowmonkey workers`: one row per live worker. */
export function workerLines(workers: WorkersReply["workers"], table: (headers: string[], rows: string[][]) => string[]): string[] {
  if (workers.length === 0) return ["no workers are running"];
  return table(
    ["WORKER", "REGION", "HANDLERS", "CAPABILITIES", "IN FLIGHT", "VERSION", "HOST", "STARTED"],
    workers.map((w) => [w.workerId, w.region, w.handlers.join(","), w.capabilities.join(",") || "-", `${w.inFlight}/${w.concurrency}`, w.version, w.host, w.startedAt]),
  );
}

/**
 * `flowmonkey queues`: one row per pool consumer. A handler's capability-qualified pools are rows
 * of their own, named as on the wire (`video-encode~gpu`); plain pools' rows are unchanged.
 */
export function queueLines(queues: QueuesReply["queues"], table: (headers: string[], rows: string[][]) => string[], regions: QueuesReply["regions"] = []): string[] {
  // A region whose domain did not answer has no rows: say so, rather than look drained.
  const unreachable = regions.filter((r) => !r.reachable).map((r) => `${r.region} (domain ${r.domain}): unreachable${r.error ? ` — ${r.error}` : ""}`);
  if (queues.length === 0) return ["no worker pools yet (a pool appears when its first worker starts)", ...unreachable];
  return [...queueTable(queues, table), ...unreachable];
}

function queueTable(queues: QueuesReply["queues"], table: (headers: string[], rows: string[][]) => string[]): string[] {
  return table(
    ["REGION", "HANDLER", "PRIORITY", "PENDING", "ACK PENDING", "REDELIVERED", "IDLE PULLS", "STATE"],
    queues.map((q) => [
      q.region,
      poolToken(q.handler, q.capabilities) ?? q.handler,
      q.priority,
      String(q.pending),
      String(q.ackPending),
      String(q.redelivered),
      String(q.waiting),
      q.paused ? "paused" : "open",
    ]),
  );
}
