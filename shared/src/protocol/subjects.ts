import { EVENT_NAME_PATTERN, parsePoolToken, poolToken, PREFIX_PATTERN, PRIORITIES, REGION_PATTERN, TOKEN_PATTERN, type Priority } from "./tokens.js";

/**
 * The one home of every public subject. Nothing else in the code base spells a subject:
 * they are built and parsed here from the configurable prefix (default `fm`), so two meshes
 * or two tests can share one server.
 */
export const DEFAULT_PREFIX = "fm";

export const EXECUTION_EVENT_TYPES = [
  "started",
  "step.dispatched",
  "step.completed",
  "step.failed",
  "step.skipped",
  "waiting",
  "resumed",
  "completed",
  "failed",
  "cancelled",
] as const;
export type ExecutionEventType = (typeof EXECUTION_EVENT_TYPES)[number];

/** The request/reply endpoints served by the engine under `<prefix>.api.`. */
export const API_ENDPOINTS = {
  flowsPut: "flows.put",
  flowsList: "flows.list",
  flowsStart: "flows.start",
  executionsGet: "executions.get",
  executionsList: "executions.list",
  executionsCancel: "executions.cancel",
  resume: "resume",
  dlqList: "dlq.list",
  dlqReplay: "dlq.replay",
  lanes: "lanes",
  usage: "usage",
  secretsPut: "secrets.put",
  secretsList: "secrets.list",
  secretsPublicKey: "secrets.publicKey",
  secretsDelete: "secrets.delete",
  secretsRotate: "secrets.rotate",
  health: "health",
  queues: "queues",
  queuesPause: "queues.pause",
  queuesResume: "queues.resume",
  dlqPurge: "dlq.purge",
  executionsRetryStep: "executions.retryStep",
  tasksGet: "tasks.get",
  schedulesPut: "schedules.put",
  schedulesGet: "schedules.get",
  schedulesList: "schedules.list",
  schedulesDelete: "schedules.delete",
  schedulesPause: "schedules.pause",
  schedulesResume: "schedules.resume",
} as const;
export type ApiEndpoint = (typeof API_ENDPOINTS)[keyof typeof API_ENDPOINTS];

export interface TaskSubject {
  region: string;
  /** The handler type (without a pool's capabilities). */
  handler: string;
  priority: Priority;
  /** The capability-qualified pool's capabilities (sorted); [] for the handler's plain pool. */
  capabilities: string[];
}

export interface ExecSubject {
  flowId: string;
  executionId: string;
  event: ExecutionEventType;
}

export class SubjectError extends Error {
  override readonly name = "SubjectError";
}

function token(kind: string, value: string): string {
  const pattern = kind === "region" ? REGION_PATTERN : kind === "subject prefix" ? PREFIX_PATTERN : TOKEN_PATTERN;
  if (!pattern.test(value)) {
    throw new SubjectError(`invalid ${kind} ${JSON.stringify(value)}: must match ${pattern.source}`);
  }
  return value;
}

function eventName(name: string): string {
  if (!EVENT_NAME_PATTERN.test(name)) throw new SubjectError(`invalid event name ${JSON.stringify(name)}: must match ${EVENT_NAME_PATTERN.source}`);
  return name;
}

/** The handler token of a task subject: the plain pool's `handler`, or `handler~cap1~cap2`. */
function poolOf(handler: string, capabilities: readonly string[] | undefined): string {
  const name = poolToken(handler, capabilities);
  if (name === undefined) {
    throw new SubjectError(`invalid handler ${JSON.stringify(handler)} or capabilities ${JSON.stringify(capabilities)}: each must match ${TOKEN_PATTERN.source}`);
  }
  return name;
}

export type Subjects = ReturnType<typeof createSubjects>;

export function createSubjects(prefix: string = DEFAULT_PREFIX) {
  token("subject prefix", prefix);
  const p = prefix;
  const split = (subject: string, head: string[]): string[] | undefined => {
    const parts = subject.split(".");
    if (parts.length <= head.length) return undefined;
    for (let i = 0; i < head.length; i++) if (parts[i] !== head[i]) return undefined;
    return parts.slice(head.length);
  };

  return {
    prefix: p,

    flowStart: (flowId: string) => `${p}.flows.start.${token("flow id", flowId)}`,
    flowStartAll: `${p}.flows.start.>`,
    parseFlowStart(subject: string): { flowId: string } | undefined {
      const rest = split(subject, [p, "flows", "start"]);
      return rest?.length === 1 && TOKEN_PATTERN.test(rest[0]!) ? { flowId: rest[0]! } : undefined;
    },

    api: (endpoint: ApiEndpoint) => `${p}.api.${endpoint}`,
    apiFlowStart: (flowId: string) => `${p}.api.${API_ENDPOINTS.flowsStart}.${token("flow id", flowId)}`,
    apiFlowStartAll: `${p}.api.${API_ENDPOINTS.flowsStart}.*`,
    apiAll: `${p}.api.>`,
    parseApiFlowStart(subject: string): { flowId: string } | undefined {
      const rest = split(subject, [p, "api", "flows", "start"]);
      return rest?.length === 1 && TOKEN_PATTERN.test(rest[0]!) ? { flowId: rest[0]! } : undefined;
    },

    /**
     * A task of the handler's plain pool, or (with `capabilities`) of the pool of the workers
     * whose capabilities are exactly that set: `<prefix>.tasks.<region>.<handler>~<cap>~<cap>.<priority>`.
     */
    task: (region: string, handler: string, priority: Priority, capabilities?: readonly string[]) =>
      `${p}.tasks.${token("region", region)}.${poolOf(handler, capabilities)}.${priority}`,
    /** Every priority of one (region, handler[, capabilities]) pool. */
    taskPool: (region: string, handler: string, capabilities?: readonly string[]) =>
      `${p}.tasks.${token("region", region)}.${poolOf(handler, capabilities)}.*`,
    tasksOfRegion: (region: string) => `${p}.tasks.${token("region", region)}.>`,
    tasksAll: `${p}.tasks.>`,
    parseTask(subject: string): TaskSubject | undefined {
      const rest = split(subject, [p, "tasks"]);
      if (rest?.length !== 3) return undefined;
      const [region, pool, priority] = rest as [string, string, string];
      const key = parsePoolToken(pool);
      if (!REGION_PATTERN.test(region) || !key) return undefined;
      if (!(PRIORITIES as readonly string[]).includes(priority)) return undefined;
      return { region, handler: key.handler, priority: priority as Priority, capabilities: key.capabilities };
    },

    results: (region: string) => `${p}.results.${token("region", region)}`,
    resultsAll: `${p}.results.>`,
    parseResults(subject: string): { region: string } | undefined {
      const rest = split(subject, [p, "results"]);
      return rest?.length === 1 && REGION_PATTERN.test(rest[0]!) ? { region: rest[0]! } : undefined;
    },

    /** Progress the engine itself reports (a map step's items): `<prefix>.progress.<executionId>.<stepId>`. */
    progress: (executionId: string, stepId: string) =>
      `${p}.progress.${token("execution id", executionId)}.${token("step id", stepId)}`,
    /**
     * Progress a region's worker reports: `<prefix>.progress.~<region>.<executionId>.<stepId>`.
     * The region is in the subject so that permissions can bind it (`worker-<region>` may publish
     * only its own); a reader may check it against the region the step runs in.
     */
    regionProgress: (region: string, executionId: string, stepId: string) =>
      `${p}.progress.~${token("region", region)}.${token("execution id", executionId)}.${token("step id", stepId)}`,
    /** Both forms of one execution's progress (the engine's, and any region's workers'). */
    progressOfExecution: (executionId: string): [string, string] => [
      `${p}.progress.${token("execution id", executionId)}.*`,
      `${p}.progress.*.${token("execution id", executionId)}.*`,
    ],
    progressAll: `${p}.progress.>`,
    /** `region`: set for a worker's progress (`~<region>.`), absent for the engine's. */
    parseProgress(subject: string): { executionId: string; stepId: string; region?: string } | undefined {
      const rest = split(subject, [p, "progress"]);
      if (rest?.length === 3 && rest[0]!.startsWith("~")) {
        const region = rest[0]!.slice(1);
        if (!REGION_PATTERN.test(region) || !TOKEN_PATTERN.test(rest[1]!) || !TOKEN_PATTERN.test(rest[2]!)) return undefined;
        return { executionId: rest[1]!, stepId: rest[2]!, region };
      }
      if (rest?.length !== 2 || !rest.every((t) => TOKEN_PATTERN.test(t))) return undefined;
      return { executionId: rest[0]!, stepId: rest[1]! };
    },

    exec: (flowId: string, executionId: string, event: ExecutionEventType) =>
      `${p}.exec.${token("flow id", flowId)}.${token("execution id", executionId)}.${event}`,
    execOfExecution: (executionId: string) => `${p}.exec.*.${token("execution id", executionId)}.>`,
    execOfFlow: (flowId: string) => `${p}.exec.${token("flow id", flowId)}.>`,
    execAll: `${p}.exec.>`,
    /** Every execution's event of one type (workers hear `cancelled` and `failed` to stop its handlers). */
    execOfType: (event: ExecutionEventType) => `${p}.exec.*.*.${event}`,
    parseExec(subject: string): ExecSubject | undefined {
      const rest = split(subject, [p, "exec"]);
      if (!rest || rest.length < 3) return undefined;
      const [flowId, executionId, ...eventParts] = rest as [string, string, ...string[]];
      const event = eventParts.join(".");
      if (!TOKEN_PATTERN.test(flowId) || !TOKEN_PATTERN.test(executionId)) return undefined;
      if (!(EXECUTION_EVENT_TYPES as readonly string[]).includes(event)) return undefined;
      return { flowId, executionId, event: event as ExecutionEventType };
    },

    /** An event from anyone trusted with `<prefix>.events.>` (the gateway, an operator): it may resume any waiting step. */
    event: (name: string) => `${p}.events.${eventName(name)}`,
    /**
     * An event a region's worker emitted: `<prefix>.events.~<region>.<name>`. The region is in
     * the subject so that permissions can bind it (`worker-<region>` may publish only its own);
     * the engine lets it resume only steps that parked in that region. `~` is not allowed in an
     * event name, so the two forms never collide.
     */
    regionEvent: (region: string, name: string) => `${p}.events.~${token("region", region)}.${eventName(name)}`,
    eventsAll: `${p}.events.>`,
    /** `region`: set for a region's event (`~<region>.`), absent for one from a trusted publisher. */
    parseEvent(subject: string): { name: string; region?: string } | undefined {
      const rest = split(subject, [p, "events"]);
      if (!rest) return undefined;
      const region = rest[0]!.startsWith("~") ? rest[0]!.slice(1) : undefined;
      if (region !== undefined && !REGION_PATTERN.test(region)) return undefined;
      const name = (region === undefined ? rest : rest.slice(1)).join(".");
      if (!EVENT_NAME_PATTERN.test(name)) return undefined;
      return region === undefined ? { name } : { name, region };
    },

    dlq: (region: string, handler: string) => `${p}.dlq.${token("region", region)}.${token("handler", handler)}`,
    dlqAll: `${p}.dlq.>`,
  };
}

/**
 * The server's advisory when a consumer has delivered a message `max_deliver` times and gives
 * up on it (a NATS system subject, not under the prefix). `consumer` absent: every consumer.
 */
export function maxDeliveriesAdvisorySubject(stream: string, consumer?: string): string {
  return `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${stream}.${consumer ?? "*"}`;
}

/**
 * The server's advisory when a delivered message of a consumer is handed back (nak): it is up
 * for redelivery at once, and no publish announces it. `consumer` absent: every consumer.
 */
export function nakAdvisorySubject(stream: string, consumer?: string): string {
  return `$JS.EVENT.ADVISORY.CONSUMER.MSG_NAKED.${stream}.${consumer ?? "*"}`;
}
