/**
 * The one table of error codes. The same code is used in NATS error replies
 * (`{"error":{"code","message"}}`), in problem+json bodies (with this HTTP status) and in the
 * CLI's exit message. docs/PROTOCOL.md lists the same codes (a test checks both ways).
 */
export const ERROR_CODES = {
  INVALID_JSON: { httpStatus: 400, retryable: false, meaning: "the body is not valid JSON" },
  INVALID_INPUT: { httpStatus: 400, retryable: false, meaning: "the body or an argument does not match the schema" },
  UNSUPPORTED_JSON: {
    httpStatus: 400,
    retryable: false,
    meaning:
      "valid JSON the mesh cannot store: a \\u0000 character or an unpaired UTF-16 surrogate (in a key or a string), or nesting deeper than 128 levels; the message names the path. A handler's result holding such JSON fails its step with this code",
  },
  PAYLOAD_TOO_LARGE: {
    httpStatus: 413,
    retryable: false,
    meaning:
      "the message is larger than the configured limit or the NATS server's max_payload (also a step whose task would not fit: it fails instead of being queued)",
  },
  INVALID_FLOW: { httpStatus: 422, retryable: false, meaning: "a flow definition is invalid (unknown step, cycle, bad field)" },
  FLOW_NOT_FOUND: { httpStatus: 404, retryable: false, meaning: "no flow with that id is registered" },
  EXECUTION_NOT_FOUND: { httpStatus: 404, retryable: false, meaning: "no execution with that id" },
  NOT_FOUND: { httpStatus: 404, retryable: false, meaning: "no such route or endpoint" },
  INVALID_STATE: { httpStatus: 409, retryable: false, meaning: "the execution is in a state that does not allow this" },
  EXPRESSION_ERROR: { httpStatus: 422, retryable: false, meaning: "a {% %} JSONata expression failed to evaluate" },
  HANDLER_NOT_FOUND: { httpStatus: 422, retryable: false, meaning: "the worker does not serve that handler type" },
  HANDLER_FAILED: { httpStatus: 500, retryable: true, meaning: "a handler threw an error that is not a typed failure" },
  TASK_TIMEOUT: { httpStatus: 504, retryable: true, meaning: "a handler did not finish within its timeout" },
  EXECUTION_ENDED: { httpStatus: 409, retryable: false, meaning: "a handler was stopped because its execution was cancelled or failed while it ran" },
  DELIVERIES_EXHAUSTED: {
    httpStatus: 500,
    retryable: false,
    meaning: "no worker finished the task in the pool's max deliveries (workers died running it); it is dead-lettered",
  },
  RESULT_MISMATCH: {
    httpStatus: 409,
    retryable: false,
    meaning:
      "a task result that does not match the attempt the engine dispatched (task id, execution, step, attempt, or the region it ran in); it is recorded as a rejection and not applied",
  },
  DEAD_TASK_NOT_FOUND: { httpStatus: 404, retryable: false, meaning: "no dead-lettered task with that id" },
  RATE_LIMITED: { httpStatus: 429, retryable: false, meaning: "too many failed token checks from this address; wait for Retry-After" },
  SCHEDULE_NOT_FOUND: { httpStatus: 404, retryable: false, meaning: "no schedule with that id" },
  SUBFLOW_FAILED: { httpStatus: 500, retryable: true, meaning: "a sub-flow step's child execution failed; the message carries its error (the step's retry policy may start a new child)" },
  MAP_ITEMS_INVALID: { httpStatus: 422, retryable: false, meaning: "a map step's items expression did not give an array, or gave more than its maxItems" },
  MAP_ITEMS_FAILED: { httpStatus: 500, retryable: false, meaning: "more items of a map step failed (after their retries) than its tolerateFailures allows; the message names the first" },
  SUBFLOW_TOO_DEEP: { httpStatus: 422, retryable: false, meaning: "a sub-flow step would nest executions more than 10 levels deep" },
  RESUME_TOKEN_NOT_FOUND: {
    httpStatus: 404,
    retryable: false,
    meaning: "no step waits on that resume token (unknown, already resumed, or its execution ended)",
  },
  RESUME_TOKEN_IN_USE: { httpStatus: 409, retryable: false, meaning: "another waiting step holds that resume token; tokens must be unique" },
  WAIT_TIMEOUT: { httpStatus: 504, retryable: false, meaning: "a waiting step's waitUntil passed before it was resumed" },
  CANCELLED: { httpStatus: 409, retryable: false, meaning: "the work was cancelled" },
  WORKER_SHUTDOWN: { httpStatus: 503, retryable: true, meaning: "the worker stopped before the handler finished" },
  OVERLOADED: { httpStatus: 503, retryable: true, meaning: "the mesh refuses new work until queues drain" },
  PUBLISH_FAILED: {
    httpStatus: 500,
    retryable: false,
    meaning: "the engine's outbox relay could not publish a task or message after repeated tries; it was dead-lettered (table outbox_dead_letters) with the reason, and a task's step fails",
  },
  UNAVAILABLE: { httpStatus: 503, retryable: true, meaning: "a dependency (NATS, engine, database) did not answer" },
  TIMEOUT: { httpStatus: 504, retryable: true, meaning: "a request did not get a reply in time" },
  VAULT_NOT_CONFIGURED: {
    httpStatus: 503,
    retryable: false,
    meaning: "the engine has no vault key (FM_VAULT_KEY): secrets cannot be stored, and a step that asks for some fails",
  },
  VAULT_KEY_NOT_FOUND: { httpStatus: 404, retryable: false, meaning: "a step asks for a secret its tenant has not stored" },
  VAULT_POOL_KEY_MISSING: {
    httpStatus: 500,
    retryable: false,
    meaning: "the engine has no public key (FM_VAULT_POOL_KEYS) for the worker pool a step with secrets runs on",
  },
  VAULT_DECRYPT_FAILED: {
    httpStatus: 500,
    retryable: false,
    meaning: "a stored secret does not decrypt with the engine's vault key (the key changed, or the row was altered)",
  },
  VAULT_SEALED_FOR_ANOTHER_POOL: {
    httpStatus: 500,
    retryable: false,
    meaning: "the worker holds no private key that opens the task's sealed secrets (they were sealed for another pool or region)",
  },
  REGION_UNAVAILABLE: {
    httpStatus: 503,
    retryable: true,
    meaning: "no region a step may run in is reachable (its link is down, no responders); the task waits in the outbox and is tried again",
  },
  RESIDENCY_UNKNOWN: {
    httpStatus: 503,
    retryable: true,
    meaning: "a step names a residency rule the engine's FM_RESIDENCY does not define; its task is held (never sent elsewhere) until the rule exists",
  },
  CAPABILITY_UNAVAILABLE: {
    httpStatus: 503,
    retryable: true,
    meaning:
      "no live worker with the capabilities a step requires serves its handler in an allowed region; the task waits. Also a worker's answer to a task whose required capabilities it lacks: the engine routes the step again",
  },
  STEP_NOT_FOUND: { httpStatus: 404, retryable: false, meaning: "the execution has no step with that id" },
  TASK_NOT_FOUND: { httpStatus: 404, retryable: false, meaning: "the step never ran that attempt (not dispatched yet, or the attempt number is past its last one)" },
  UNAUTHORIZED: { httpStatus: 401, retryable: false, meaning: "API tokens are configured and the request carries no valid bearer token" },
  FORBIDDEN: { httpStatus: 403, retryable: false, meaning: "the token is valid but lacks the scope, or names another tenant, for this request" },
  OOM: { httpStatus: 500, retryable: false, meaning: "a sandboxed handler ran out of its memory limit; its sandbox was killed and replaced" },
  SANDBOX_VIOLATION: {
    httpStatus: 500,
    retryable: false,
    meaning: "a sandboxed handler used something the sandbox forbids (require, process, files, child processes, setInterval)",
  },
  NETWORK_DENIED: {
    httpStatus: 500,
    retryable: false,
    meaning: "a sandboxed handler's fetch went to a loopback, private, link-local or metadata address (checked after DNS resolution), or past its task's limit of fetches in flight",
  },
  SANDBOX_FLOOD: {
    httpStatus: 500,
    retryable: false,
    meaning: "a sandboxed handler sent more messages, bytes, context writes, events, logs, requests in flight or stray errors than its limits allow; its sandbox was killed",
  },
  SANDBOX_ISOLATION_UNAVAILABLE: {
    httpStatus: 500,
    retryable: false,
    meaning:
      "the worker cannot give sandboxed handlers an OS isolation layer (own uid, namespaces, read-only mounts, rlimits, parent death: not root, not Linux, a tool missing); it refuses to start them unless FM_SANDBOX_ISOLATION=weak",
  },
  SANDBOX_CRASHED: { httpStatus: 500, retryable: true, meaning: "a sandbox process died while running the task; it was replaced" },
  CHECKPOINT_OVERDUE: {
    httpStatus: 500,
    retryable: true,
    meaning: "a stateful sandboxed handler went longer than its manifest's checkpoint interval without saving a checkpoint; it was killed",
  },
  HANDLER_INTEGRITY: {
    httpStatus: 500,
    retryable: false,
    meaning: "a handler bundle does not match the sha256 in its manifest, or its manifest is invalid; it is not loaded",
  },
  HANDLER_LOAD_FAILED: {
    httpStatus: 500,
    retryable: false,
    meaning: "a sandboxed handler's bundle does not load (it does not compile, its top level throws, runs past 5 s or exhausts its memory); its tasks fail and the worker serves on",
  },
  INTERNAL: { httpStatus: 500, retryable: true, meaning: "an unexpected error; the logs carry the details" },
} as const satisfies Record<string, { httpStatus: number; retryable: boolean; meaning: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;
export const ERROR_CODE_LIST = Object.keys(ERROR_CODES) as ErrorCode[];

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && Object.hasOwn(ERROR_CODES, value);
}
