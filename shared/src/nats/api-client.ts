import type { NatsConnection } from "@nats-io/nats-core";
import { errors as natsErrors, type MsgHdrs } from "@nats-io/nats-core";
import { traceparentHeaders } from "../tracing/tracing.js";
import { z } from "zod";
import { FmError } from "../errors/fm-error.js";
import { toError } from "../errors/coerce.js";
import {
  CancelReply,
  DlqListReply,
  DlqReplayReply,
  ErrorReplySchema,
  ExecutionListReply,
  ExecutionView,
  FlowListReply,
  FlowPutReply,
  LanesReply,
  HealthReply,
  QueuesReply,
  QueuePauseReply,
  DlqPurgeReply,
  RetryStepReply,
  TaskGetReply,
  type DlqPurgeRequest,
  type QueuePauseRequest,
  type QueueResumeRequest,
  type QueuesRequest,
  UsageReply,
  type UsageRequest,
  ResumeReply,
  SecretListReply,
  SecretDeleteReply,
  SecretRotateReply,
  type SecretDeleteRequest,
  type SecretRotateRequest,
  SecretPublicKeyReply,
  SecretPutInput,
  SecretPutReply,
  StartReply,
  type DlqListRequest,
  type ExecutionListRequest,
} from "../protocol/api.js";
import { decode, describeIssues, encode, parseWith } from "../protocol/codec.js";
import type { FlowStartInput } from "../protocol/messages/flow-start.js";
import { API_ENDPOINTS, createSubjects, type Subjects } from "../protocol/subjects.js";
import { ScheduleDeleteReply, ScheduleListReply, ScheduleView, type SchedulePutRequest } from "../protocol/schedules.js";

/** Set by the NATS service protocol on error replies (`respondError`). */
const SERVICE_ERROR_HEADER = "Nats-Service-Error-Code";

export interface ApiClientOptions {
  prefix?: string;
  timeoutMs?: number;
}

export type ApiClient = ReturnType<typeof createApiClient>;

/**
 * Typed client of the engine's `fm.api.*` endpoints, used by the gateway, the CLI and tests.
 * Error replies become FmErrors with their code; no responders become UNAVAILABLE.
 */
export function createApiClient(nc: NatsConnection, options: ApiClientOptions = {}) {
  const subjects: Subjects = createSubjects(options.prefix);
  const timeout = options.timeoutMs ?? 10_000;

  async function call<S extends z.ZodType>(subject: string, body: unknown, reply: S, headers?: MsgHdrs): Promise<z.output<S>> {
    let msg;
    try {
      msg = await nc.request(subject, encode(body ?? {}), { timeout, ...(headers ? { headers } : {}) });
    } catch (thrown) {
      const err = toError(thrown);
      if (err instanceof natsErrors.NoRespondersError || /no responders/i.test(err.message)) {
        throw new FmError("UNAVAILABLE", `no engine answers ${subject}; is flowmonkey-engine running?`, { cause: err });
      }
      if (err instanceof natsErrors.TimeoutError || /timeout/i.test(err.name)) {
        throw new FmError("TIMEOUT", `no reply on ${subject} within ${timeout} ms`, { cause: err });
      }
      throw new FmError("UNAVAILABLE", `request on ${subject} failed: ${err.message}`, { cause: err });
    }
    const json = decode(msg.data, z.unknown(), { what: `reply from ${subject}`, maxBytes: 64 * 1024 * 1024 });
    // Error replies carry the service-protocol error header; a body with an `error` field alone
    // is not one (an execution view has an `error` too).
    if (msg.headers?.get(SERVICE_ERROR_HEADER)) {
      const asError = ErrorReplySchema.safeParse(json);
      if (asError.success) throw FmError.fromReply(asError.data);
      throw new FmError("INTERNAL", `${subject} failed: ${msg.headers.get("Nats-Service-Error")}`);
    }
    const parsed = reply.safeParse(json);
    // A reply that does not match its schema is the engine's fault, not the caller's input.
    if (!parsed.success) throw new FmError("INTERNAL", `unexpected reply from ${subject}: ${describeIssues(parsed.error)}`);
    return parsed.data;
  }

  return {
    subjects,
    putFlow: (definition: unknown) => call(subjects.api(API_ENDPOINTS.flowsPut), definition, FlowPutReply),
    listFlows: (flowId?: string) => call(subjects.api(API_ENDPOINTS.flowsList), flowId ? { flowId } : {}, FlowListReply),
    /** `traceparent`: the caller's span (W3C), so the execution joins its trace. */
    start: (flowId: string, start: FlowStartInput = {}, options: { traceparent?: string | undefined } = {}) =>
      call(subjects.apiFlowStart(flowId), start, StartReply, options.traceparent ? traceparentHeaders(options.traceparent) : undefined),
    get: (executionId: string) => call(subjects.api(API_ENDPOINTS.executionsGet), { executionId }, ExecutionView),
    list: (request: ExecutionListRequest = {}) => call(subjects.api(API_ENDPOINTS.executionsList), request, ExecutionListReply),
    cancel: (executionId: string) => call(subjects.api(API_ENDPOINTS.executionsCancel), { executionId }, CancelReply),
    listDeadTasks: (request: DlqListRequest = {}) => call(subjects.api(API_ENDPOINTS.dlqList), request, DlqListReply),
    replayDeadTasks: (ids: string[]) => call(subjects.api(API_ENDPOINTS.dlqReplay), { ids }, DlqReplayReply),
    purgeDeadTasks: (request: DlqPurgeRequest = {}) => call(subjects.api(API_ENDPOINTS.dlqPurge), request, DlqPurgeReply),
    retryStep: (executionId: string, stepId: string) => call(subjects.api(API_ENDPOINTS.executionsRetryStep), { executionId, stepId }, RetryStepReply),
    getTask: (taskId: string, attempt?: number) =>
      call(subjects.api(API_ENDPOINTS.tasksGet), attempt === undefined ? { taskId } : { taskId, attempt }, TaskGetReply),
    lanes: () => call(subjects.api(API_ENDPOINTS.lanes), {}, LanesReply),
    health: () => call(subjects.api(API_ENDPOINTS.health), {}, HealthReply),
    queues: (request: QueuesRequest = {}) => call(subjects.api(API_ENDPOINTS.queues), request, QueuesReply),
    pauseQueue: (request: QueuePauseRequest) => call(subjects.api(API_ENDPOINTS.queuesPause), request, QueuePauseReply),
    resumeQueue: (request: QueueResumeRequest) => call(subjects.api(API_ENDPOINTS.queuesResume), request, QueuePauseReply),
    usage: (request: UsageRequest = {}) => call(subjects.api(API_ENDPOINTS.usage), request, UsageReply),
    /**
     * Stores a secret. The value is sealed here, for the engine's vault public key, with the
     * tenant and key it is for: it never crosses NATS in clear.
     */
    putSecret: async (input: SecretPutInput) => {
      const { tenantId, key, value } = parseWith(SecretPutInput, input, "secret");
      const { publicKey } = await call(subjects.api(API_ENDPOINTS.secretsPublicKey), {}, SecretPublicKeyReply);
      // Loaded on first use: only processes that store secrets need libsodium.
      const { sealFor } = await import("../vault/sealed-box.js");
      const { decodeBase64 } = await import("../vault/keys.js");
      const engineKey = decodeBase64(publicKey);
      if (!engineKey) throw new FmError("INTERNAL", "the engine's vault public key is not base64");
      const sealedValue = sealFor(engineKey, new TextEncoder().encode(JSON.stringify({ tenantId, key, value })));
      return call(subjects.api(API_ENDPOINTS.secretsPut), { tenantId, key, sealedValue }, SecretPutReply);
    },
    deleteSecret: (request: SecretDeleteRequest) => call(subjects.api(API_ENDPOINTS.secretsDelete), request, SecretDeleteReply),
    rotateSecrets: (request: SecretRotateRequest = {}) => call(subjects.api(API_ENDPOINTS.secretsRotate), request, SecretRotateReply),
    /** The engine's vault public key (what putSecret seals for). */
    secretsPublicKey: () => call(subjects.api(API_ENDPOINTS.secretsPublicKey), {}, SecretPublicKeyReply),
    listSecrets: (tenantId = "") => call(subjects.api(API_ENDPOINTS.secretsList), { tenantId }, SecretListReply),
    putSchedule: (request: SchedulePutRequest) => call(subjects.api(API_ENDPOINTS.schedulesPut), request, ScheduleView.extend({ created: z.boolean() })),
    getSchedule: (scheduleId: string) => call(subjects.api(API_ENDPOINTS.schedulesGet), { scheduleId }, ScheduleView),
    listSchedules: (flowId?: string) => call(subjects.api(API_ENDPOINTS.schedulesList), flowId ? { flowId } : {}, ScheduleListReply),
    deleteSchedule: (scheduleId: string) => call(subjects.api(API_ENDPOINTS.schedulesDelete), { scheduleId }, ScheduleDeleteReply),
    pauseSchedule: (scheduleId: string) => call(subjects.api(API_ENDPOINTS.schedulesPause), { scheduleId }, ScheduleView),
    resumeSchedule: (scheduleId: string) => call(subjects.api(API_ENDPOINTS.schedulesResume), { scheduleId }, ScheduleView),
    resume: (resumeToken: string, payload?: unknown, tenantId?: string) =>
      call(
        subjects.api(API_ENDPOINTS.resume),
        { resumeToken, ...(payload === undefined ? {} : { payload }), ...(tenantId === undefined ? {} : { tenantId }) },
        ResumeReply,
      ),
  };
}
