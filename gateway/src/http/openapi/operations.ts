import {
  CancelReply,
  DlqPurgeReply,
  DlqPurgeRequest,
  DlqReplayReply,
  DlqReplayRequest,
  DlqListReply,
  ExecutionListReply,
  ExecutionView,
  FlowListReply,
  FlowPutReply,
  LanesReply,
  LanesRequest,
  QueuePauseReply,
  QueuesReply,
  QueuesRequest,
  ResumeReply,
  RetryStepReply,
  SecretListReply,
  SecretListRequest,
  SecretPutReply,
  SecretDeleteReply,
  StartReply,
  UsageReply,
  UsageRequest,
  WorkersReply,
  FlowStart,
  ScheduleDeleteReply,
  ScheduleListReply,
  ScheduleListRequest,
  SchedulePutRequest,
  ScheduleView,
} from "@flowmonkey/shared";
import { z } from "zod";
import { DlqListQuery } from "../routes/dlq.js";
import { ExecutionListQuery, ResumeBody, ResumePayload } from "../routes/executions.js";
import { FlowListQuery } from "../routes/flows.js";
import { EmitBody, PauseBody, WorkersQuery } from "../routes/operators.js";
import { SecretPutBody } from "../routes/secrets.js";

/** PUT /v1/schedules/:scheduleId's body, as documented: the put request (its scheduleId comes from the path). */
const SchedulePutDoc = SchedulePutRequest;

/** One served route as the OpenAPI document describes it; schemas are the ones the routes parse with. */
export interface Operation {
  method: "get" | "post" | "put" | "delete";
  /** Hono's form (`/v1/executions/:id`). */
  path: string;
  summary: string;
  tag: string;
  query?: z.ZodObject;
  body?: z.ZodType;
  /** Success status and body; `contentType` other than JSON for streams, pages and metrics. */
  status: number;
  response?: z.ZodType;
  contentType?: string;
  /** Needs a bearer token when API tokens are configured. */
  secured?: boolean;
}

const Accepted = z.object({ name: z.string(), stream: z.string(), seq: z.number().int(), duplicate: z.boolean() });
const Ok = z.object({ status: z.literal("ok") });
const Ready = Ok.extend({ nats: z.string(), engine: z.object({ status: z.string(), version: z.string() }), store: z.object({ kind: z.string(), latencyMs: z.number() }) });

const v1 = (o: Omit<Operation, "secured">): Operation => ({ ...o, secured: true });

/** Every route the gateway serves (the OpenAPI test checks the app's routes against this list). */
export const OPERATIONS: Operation[] = [
  { method: "get", path: "/healthz", tag: "probes", summary: "Liveness: the process serves HTTP", status: 200, response: Ok },
  { method: "get", path: "/readyz", tag: "probes", summary: "Readiness: NATS connected, an engine answers and its store runs SELECT 1", status: 200, response: Ready },
  { method: "get", path: "/metrics", tag: "probes", summary: "Prometheus metrics of the gateway", status: 200, contentType: "text/plain" },
  { method: "get", path: "/openapi.json", tag: "probes", summary: "This document", status: 200, response: z.object({ openapi: z.string() }).passthrough() },
  v1({ method: "post", path: "/v1/flows", tag: "flows", summary: "Register a flow definition (JSON, or YAML with content-type application/yaml)", body: z.unknown(), status: 201, response: FlowPutReply }),
  v1({ method: "get", path: "/v1/flows", tag: "flows", summary: "List flow definitions", query: FlowListQuery, status: 200, response: FlowListReply }),
  v1({ method: "post", path: "/v1/flows/:flowId/executions", tag: "executions", summary: "Start an execution", body: FlowStart, status: 202, response: StartReply }),
  v1({ method: "get", path: "/v1/executions", tag: "executions", summary: "List executions (keyset-paged)", query: ExecutionListQuery, status: 200, response: ExecutionListReply }),
  v1({ method: "get", path: "/v1/executions/:id", tag: "executions", summary: "Get an execution with its steps", status: 200, response: ExecutionView }),
  v1({ method: "post", path: "/v1/executions/:id/cancel", tag: "executions", summary: "Cancel an execution", status: 200, response: CancelReply }),
  v1({ method: "post", path: "/v1/executions/:id/steps/:stepId/retry", tag: "executions", summary: "Run a failed step again", status: 200, response: RetryStepReply }),
  v1({ method: "get", path: "/v1/executions/:id/events", tag: "executions", summary: "Server-sent events of one execution", status: 200, contentType: "text/event-stream" }),
  v1({ method: "post", path: "/v1/resume", tag: "executions", summary: "Resume a waiting step by its token", body: ResumeBody, status: 200, response: ResumeReply }),
  v1({ method: "post", path: "/v1/resume/:token", tag: "executions", summary: "Resume a waiting step; the body is the payload", body: ResumePayload, status: 200, response: ResumeReply }),
  v1({ method: "get", path: "/v1/events", tag: "events", summary: "Server-sent events of every execution", status: 200, contentType: "text/event-stream" }),
  v1({ method: "get", path: "/v1/flows/:flowId/events", tag: "flows", summary: "Server-sent events of one flow's executions (a snapshot of the recent ones first)", status: 200, contentType: "text/event-stream" }),
  v1({ method: "post", path: "/v1/events/:name", tag: "events", summary: "Emit a custom event (JetStream publish to the events subject of that name; Idempotency-Key de-duplicates)", body: EmitBody, status: 202, response: Accepted }),
  v1({ method: "get", path: "/v1/dlq", tag: "dead letters", summary: "List dead-lettered tasks", query: DlqListQuery, status: 200, response: DlqListReply }),
  v1({ method: "post", path: "/v1/dlq/replay", tag: "dead letters", summary: "Replay dead-lettered tasks", body: DlqReplayRequest, status: 200, response: DlqReplayReply }),
  v1({ method: "post", path: "/v1/dlq/purge", tag: "dead letters", summary: "Delete dead letters", body: DlqPurgeRequest, status: 200, response: DlqPurgeReply }),
  v1({ method: "get", path: "/v1/lanes", tag: "operations", summary: "Lanes that are not plainly healthy", query: LanesRequest, status: 200, response: LanesReply }),
  v1({ method: "get", path: "/v1/usage", tag: "operations", summary: "Usage per tenant and pool tier", query: UsageRequest, status: 200, response: UsageReply }),
  v1({ method: "get", path: "/v1/workers", tag: "operations", summary: "Live workers (KV fm_workers)", query: WorkersQuery, status: 200, response: WorkersReply }),
  v1({ method: "get", path: "/v1/queues", tag: "operations", summary: "Depth and ack-pending per pool and priority, and paused lanes", query: QueuesRequest, status: 200, response: QueuesReply }),
  v1({ method: "post", path: "/v1/queues/:region/:handler/pause", tag: "operations", summary: "Pause a lane: the engine parks its new tasks", body: PauseBody, status: 200, response: QueuePauseReply }),
  v1({ method: "post", path: "/v1/queues/:region/:handler/resume", tag: "operations", summary: "Resume a lane and publish its parked tasks", status: 200, response: QueuePauseReply }),
  v1({ method: "put", path: "/v1/secrets/:key", tag: "secrets", summary: "Store a secret (encrypted at rest)", body: SecretPutBody, status: 201, response: SecretPutReply }),
  v1({ method: "delete", path: "/v1/secrets/:key", tag: "secrets", summary: "Delete a secret (404 when there was none)", query: SecretListRequest, status: 200, response: SecretDeleteReply }),
  v1({ method: "get", path: "/v1/secrets", tag: "secrets", summary: "List a tenant's secret names", query: SecretListRequest, status: 200, response: SecretListReply }),
  v1({ method: "put", path: "/v1/schedules/:scheduleId", tag: "schedules", summary: "Create or replace a schedule (cron or everyMs; overlap, missed)", body: SchedulePutDoc, status: 201, response: ScheduleView }),
  v1({ method: "get", path: "/v1/schedules", tag: "schedules", summary: "List schedules, with their next tick and last tick's outcome", query: ScheduleListRequest, status: 200, response: ScheduleListReply }),
  v1({ method: "get", path: "/v1/schedules/:scheduleId", tag: "schedules", summary: "One schedule", status: 200, response: ScheduleView }),
  v1({ method: "delete", path: "/v1/schedules/:scheduleId", tag: "schedules", summary: "Delete a schedule (its executions stay)", status: 200, response: ScheduleDeleteReply }),
  v1({ method: "post", path: "/v1/schedules/:scheduleId/pause", tag: "schedules", summary: "Pause a schedule", status: 200, response: ScheduleView }),
  v1({ method: "post", path: "/v1/schedules/:scheduleId/resume", tag: "schedules", summary: "Resume a schedule from now", status: 200, response: ScheduleView }),
  { method: "get", path: "/", tag: "dashboard", summary: "The live dashboard", status: 200, contentType: "text/html" },
  { method: "get", path: "/dashboard/app.js", tag: "dashboard", summary: "Dashboard script", status: 200, contentType: "text/javascript" },
  { method: "get", path: "/dashboard/style.css", tag: "dashboard", summary: "Dashboard styles", status: 200, contentType: "text/css" },
];
