import { z } from "zod";
import { FlowDefinition } from "../flows/definition.js";
import { HandlerManifest } from "../handlers/manifest.js";
import { WorkerEntry } from "./api.js";
import { CheckpointEnvelope, ContextManifest, Event, ExecutionEvent, FlowStart, Progress, Task, TaskResult } from "./messages/index.js";

/**
 * The contract as JSON Schema (draft 2020-12), generated from the zod schemas every part of the
 * mesh validates with: what a flow file may say, and every message a worker (in any language)
 * sends or receives. `npm run schemas` writes them to schemas/; a test fails when they are stale.
 */
const CONTRACT: Record<string, { schema: z.ZodType; title: string; description: string }> = {
  "flow.schema.json": { schema: FlowDefinition, title: "FlowMonkey flow definition", description: "A flow file (YAML or JSON), as `flowmonkey flows push` and the flows.put API take it." },
  "flow-start.schema.json": { schema: FlowStart, title: "Flow start", description: "The body of a flow start: a plain publish on the flow-start subject, or a request to the API (docs/PROTOCOL.md, Subjects)." },
  "task.schema.json": { schema: Task, title: "Task", description: "What a worker pulls from its pool's task subject (region, handler, priority); `vault` values are sealed boxes (base64) for the pool's key." },
  "task-result.schema.json": { schema: TaskResult, title: "Task result", description: "What a worker publishes on its region's results subject (JetStream, Nats-Msg-Id <taskId>:<attempt>), then acks its task." },
  "progress.schema.json": { schema: Progress, title: "Progress", description: "What a worker publishes on the step's progress subject and puts in KV fm_progress." },
  "event.schema.json": { schema: Event, title: "Event", description: "A custom event on the events subject of its name (emitted by a handler or POST /v1/events); it may resume waiting steps." },
  "execution-event.schema.json": { schema: ExecutionEvent, title: "Execution event", description: "The engine's lifecycle events on the execution's exec subject (flow, execution id, event)." },
  "worker-entry.schema.json": { schema: WorkerEntry, title: "Worker registry entry", description: "A live worker's entry in KV fm_workers (refreshed within the bucket's TTL)." },
  "context-manifest.schema.json": { schema: ContextManifest, title: "Context manifest", description: "An offloaded context's manifest: which keys are in the region's blob bucket, fm_blobs_<region> (gzip'd), and which inline." },
  "checkpoint-envelope.schema.json": { schema: CheckpointEnvelope, title: "Checkpoint entry", description: "A KV fm_checkpoints entry: the state, or a reference to its gzip'd copy in the region's blob bucket, fm_blobs_<region>." },
  "handler-manifest.schema.json": { schema: HandlerManifest, title: "Sandboxed handler manifest", description: "handler.json of a sandboxed handler package (docs/SANDBOX.md)." },
};

/** File name → JSON text (2-space indented, trailing newline) of every contract schema. */
export function contractJsonSchemas(): Record<string, string> {
  return Object.fromEntries(
    Object.entries(CONTRACT).map(([file, { schema, title, description }]) => {
      const json = z.toJSONSchema(schema, { io: "input", unrepresentable: "any", target: "draft-2020-12" }) as Record<string, unknown>;
      const { $schema, ...rest } = json;
      return [file, `${JSON.stringify({ $schema, $id: `https://flowmonkey.dev/schemas/${file}`, title, description, ...rest }, null, 2)}\n`];
    }),
  );
}
