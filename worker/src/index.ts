export { createWorker, type Worker, type WorkerStats } from "./worker.js";
export { resolveWorkerOptions, WORKER_DEFAULTS, WorkerOptionsError, type WorkerOptions, type ResolvedWorkerOptions } from "./worker-options.js";
export { defineHandler, type HandlerDefinition, type AnyHandler } from "./sdk/define-handler.js";
export { HandlerFailure, NonRetryableFailure, RetryableFailure, type FailureOptions } from "./sdk/failures.js";
export type { CheckpointApi, ContextApi, EventsApi, HandlerContext, ProgressApi, SecretsApi, TaskInfo } from "./sdk/handler-context.js";
export { builtInHandlers, BUILT_IN_HANDLER_TYPES } from "./handlers/index.js";
export type { WorkerEntry } from "./presence/registry-entry.js";
export { WORKER_VERSION } from "./version.js";
