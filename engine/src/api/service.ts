import type { NatsConnection } from "@nats-io/nats-core";
import { Svcm, type Service, type ServiceMsg } from "@nats-io/services";
import {
  API_ENDPOINTS,
  decode,
  DlqListRequest,
  DlqReplayRequest,
  ExecutionListRequest,
  ExecutionRef,
  FlowListRequest,
  FmError,
  LanesRequest,
  HealthRequest,
  QueuesRequest,
  QueuePauseRequest,
  QueueResumeRequest,
  DlqPurgeRequest,
  RetryStepRequest,
  TaskGetRequest,
  ResumeRequest,
  ScheduleListRequest,
  SchedulePutRequest,
  ScheduleRef,
  SecretListRequest,
  SecretPutRequest,
  SecretPublicKeyRequest,
  SecretDeleteRequest,
  SecretRotateRequest,
  toFmError,
  UsageRequest,
  type ApiEndpoint,
  type Logger,
  type Names,
} from "@flowmonkey/shared";
import type { z } from "zod";
import { respond } from "./respond.js";

export interface ApiHandlers {
  putFlow(body: unknown): Promise<unknown>;
  listFlows(req: z.output<typeof FlowListRequest>): Promise<unknown>;
  /** Starts go through the intake batcher, which answers them itself. */
  start(msg: ServiceMsg, flowId: string): void;
  getExecution(req: z.output<typeof ExecutionRef>): Promise<unknown>;
  listExecutions(req: z.output<typeof ExecutionListRequest>): Promise<unknown>;
  cancelExecution(req: z.output<typeof ExecutionRef>): Promise<unknown>;
  listDeadTasks(req: z.output<typeof DlqListRequest>): Promise<unknown>;
  replayDeadTasks(req: z.output<typeof DlqReplayRequest>): Promise<unknown>;
  lanes(req: z.output<typeof LanesRequest>): Promise<unknown>;
  resume(req: z.output<typeof ResumeRequest>): Promise<unknown>;
  usage(req: z.output<typeof UsageRequest>): Promise<unknown>;
  putSecret(req: z.output<typeof SecretPutRequest>): Promise<unknown>;
  listSecrets(req: z.output<typeof SecretListRequest>): Promise<unknown>;
  secretsPublicKey(req: z.output<typeof SecretPublicKeyRequest>): Promise<unknown>;
  deleteSecret(req: z.output<typeof SecretDeleteRequest>): Promise<unknown>;
  rotateSecrets(req: z.output<typeof SecretRotateRequest>): Promise<unknown>;
  health(req: z.output<typeof HealthRequest>): Promise<unknown>;
  queues(req: z.output<typeof QueuesRequest>): Promise<unknown>;
  pauseQueue(req: z.output<typeof QueuePauseRequest>): Promise<unknown>;
  resumeQueue(req: z.output<typeof QueueResumeRequest>): Promise<unknown>;
  purgeDeadTasks(req: z.output<typeof DlqPurgeRequest>): Promise<unknown>;
  retryStep(req: z.output<typeof RetryStepRequest>): Promise<unknown>;
  getTask(req: z.output<typeof TaskGetRequest>): Promise<unknown>;
  putSchedule(req: z.output<typeof SchedulePutRequest>): Promise<unknown>;
  getSchedule(req: z.output<typeof ScheduleRef>): Promise<unknown>;
  listSchedules(req: z.output<typeof ScheduleListRequest>): Promise<unknown>;
  deleteSchedule(req: z.output<typeof ScheduleRef>): Promise<unknown>;
  pauseSchedule(req: z.output<typeof ScheduleRef>): Promise<unknown>;
  resumeSchedule(req: z.output<typeof ScheduleRef>): Promise<unknown>;
}

/**
 * `fm.api.*` as a NATS micro service, so `nats micro ls|info|stats` discover it. Every
 * request body is validated; every failure is answered with `{"error":{code,message}}`.
 */
export async function startApiService(options: {
  nc: NatsConnection;
  names: Names;
  handlers: ApiHandlers;
  log: Logger;
  maxMessageBytes: number;
  version: string;
}): Promise<Service> {
  const { nc, names, handlers, log, maxMessageBytes } = options;
  const s = names.subjects;
  const service = await new Svcm(nc).add({
    name: names.serviceName,
    version: options.version,
    description: "FlowMonkey Mesh engine API: flows, executions, resume, dead letters",
    queue: "flowmonkey-engine",
  });

  const endpoint = <S extends z.ZodType>(name: ApiEndpoint, schema: S, handle: (req: z.output<S>) => Promise<unknown>) => {
    service.addEndpoint(name.replace(/\./g, "_"), {
      subject: s.api(name),
      handler: (err, msg) => {
        if (err) return log.error({ err }, "api endpoint stopped");
        void (async () => {
          try {
            const req = decode(msg.data.length ? msg.data : new TextEncoder().encode("{}"), schema, {
              maxBytes: maxMessageBytes,
              what: `request on ${msg.subject}`,
              forStorage: true,
            });
            respond(msg, await handle(req));
          } catch (thrown) {
            const error = toFmError(thrown);
            if (error.code === "INTERNAL") log.error({ err: thrown, subject: msg.subject }, "api request failed");
            respond(msg, error);
          }
        })();
      },
    });
  };

  endpoint(API_ENDPOINTS.flowsPut, zUnknown, (body) => handlers.putFlow(body));
  endpoint(API_ENDPOINTS.flowsList, FlowListRequest, (req) => handlers.listFlows(req));
  endpoint(API_ENDPOINTS.executionsGet, ExecutionRef, (req) => handlers.getExecution(req));
  endpoint(API_ENDPOINTS.executionsList, ExecutionListRequest, (req) => handlers.listExecutions(req));
  endpoint(API_ENDPOINTS.executionsCancel, ExecutionRef, (req) => handlers.cancelExecution(req));
  endpoint(API_ENDPOINTS.dlqList, DlqListRequest, (req) => handlers.listDeadTasks(req));
  endpoint(API_ENDPOINTS.dlqReplay, DlqReplayRequest, (req) => handlers.replayDeadTasks(req));
  endpoint(API_ENDPOINTS.lanes, LanesRequest, (req) => handlers.lanes(req));
  endpoint(API_ENDPOINTS.resume, ResumeRequest, (req) => handlers.resume(req));
  endpoint(API_ENDPOINTS.usage, UsageRequest, (req) => handlers.usage(req));
  endpoint(API_ENDPOINTS.secretsPut, SecretPutRequest, (req) => handlers.putSecret(req));
  endpoint(API_ENDPOINTS.secretsList, SecretListRequest, (req) => handlers.listSecrets(req));
  endpoint(API_ENDPOINTS.secretsPublicKey, SecretPublicKeyRequest, (req) => handlers.secretsPublicKey(req));
  endpoint(API_ENDPOINTS.secretsDelete, SecretDeleteRequest, (req) => handlers.deleteSecret(req));
  endpoint(API_ENDPOINTS.secretsRotate, SecretRotateRequest, (req) => handlers.rotateSecrets(req));
  endpoint(API_ENDPOINTS.health, HealthRequest, (req) => handlers.health(req));
  endpoint(API_ENDPOINTS.queues, QueuesRequest, (req) => handlers.queues(req));
  endpoint(API_ENDPOINTS.queuesPause, QueuePauseRequest, (req) => handlers.pauseQueue(req));
  endpoint(API_ENDPOINTS.queuesResume, QueueResumeRequest, (req) => handlers.resumeQueue(req));
  endpoint(API_ENDPOINTS.dlqPurge, DlqPurgeRequest, (req) => handlers.purgeDeadTasks(req));
  endpoint(API_ENDPOINTS.executionsRetryStep, RetryStepRequest, (req) => handlers.retryStep(req));
  endpoint(API_ENDPOINTS.tasksGet, TaskGetRequest, (req) => handlers.getTask(req));
  endpoint(API_ENDPOINTS.schedulesPut, SchedulePutRequest, (req) => handlers.putSchedule(req));
  endpoint(API_ENDPOINTS.schedulesGet, ScheduleRef, (req) => handlers.getSchedule(req));
  endpoint(API_ENDPOINTS.schedulesList, ScheduleListRequest, (req) => handlers.listSchedules(req));
  endpoint(API_ENDPOINTS.schedulesDelete, ScheduleRef, (req) => handlers.deleteSchedule(req));
  endpoint(API_ENDPOINTS.schedulesPause, ScheduleRef, (req) => handlers.pauseSchedule(req));
  endpoint(API_ENDPOINTS.schedulesResume, ScheduleRef, (req) => handlers.resumeSchedule(req));
  service.addEndpoint("flows_start", {
    subject: s.apiFlowStartAll,
    handler: (err, msg) => {
      if (err) return log.error({ err }, "api endpoint stopped");
      const flowId = s.parseApiFlowStart(msg.subject)?.flowId;
      if (!flowId) return respond(msg, new FmError("INVALID_INPUT", `subject ${msg.subject} does not name a flow`));
      handlers.start(msg, flowId);
    },
  });
  return service;
}

import { z as zod } from "zod";
const zUnknown = zod.unknown();
