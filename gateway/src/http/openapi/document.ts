import { ERROR_CODE_LIST } from "@flowmonkey/shared";
import { z } from "zod";
import { OPERATIONS, type Operation } from "./operations.js";

/** problem+json as problem.ts writes it. */
const ProblemSchema = z.object({
  type: z.string(),
  title: z.string(),
  status: z.number().int(),
  detail: z.string(),
  code: z.enum(ERROR_CODE_LIST as [string, ...string[]]),
  errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
});

type JsonSchema = Record<string, unknown>;

/** zod → JSON Schema 2020-12 (OpenAPI 3.1's dialect): requests as they are sent, replies as they are returned. */
function schemaOf(schema: z.ZodType, io: "input" | "output"): JsonSchema {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: "any" }) as JsonSchema;
  return rest;
}

/** `/v1/executions/:id` → `/v1/executions/{id}`. */
export const openApiPath = (honoPath: string) => honoPath.replace(/:([A-Za-z0-9_]+)/g, "{$1}");

function operationObject(op: Operation, secured: boolean): JsonSchema {
  const pathParams = [...op.path.matchAll(/:([A-Za-z0-9_]+)/g)].map((m) => ({ name: m[1], in: "path", required: true, schema: { type: "string" } }));
  const queryParams = op.query
    ? Object.entries(schemaOf(op.query, "input")["properties"] as Record<string, JsonSchema>).map(([name, schema]) => ({
        name,
        in: "query",
        required: false,
        schema,
      }))
    : [];
  const parameters = [...pathParams, ...queryParams];
  const content = op.contentType
    ? { [op.contentType]: { schema: { type: "string" } } }
    : op.response
      ? { "application/json": { schema: schemaOf(op.response, "output") } }
      : undefined;
  return {
    summary: op.summary,
    tags: [op.tag],
    operationId: `${op.method}${openApiPath(op.path).replace(/[^A-Za-z0-9]+(.)?/g, (_, c: string | undefined) => (c ?? "").toUpperCase())}`,
    ...(parameters.length > 0 ? { parameters } : {}),
    ...(op.body ? { requestBody: { required: false, content: { "application/json": { schema: schemaOf(op.body, "input") } } } } : {}),
    responses: {
      [String(op.status)]: { description: "success", ...(content ? { content } : {}) },
      default: { $ref: "#/components/responses/Problem" },
    },
    ...(op.secured && secured ? { security: [{ bearer: [] }] } : {}),
  };
}

/** The OpenAPI 3.1 document of the gateway, built from the schemas the routes validate with. */
export function openApiDocument(options: { version: string; secured: boolean }): JsonSchema {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of OPERATIONS) (paths[openApiPath(op.path)] ??= {})[op.method] = operationObject(op, options.secured);
  return {
    openapi: "3.1.0",
    info: {
      title: "FlowMonkey Mesh gateway",
      version: options.version,
      description: "HTTP face of the mesh: thin calls into the engine's request-reply API. Errors are RFC 9457 problem+json with a stable `code` (docs/PROTOCOL.md).",
    },
    paths,
    components: {
      schemas: { Problem: schemaOf(ProblemSchema, "output") },
      responses: { Problem: { description: "an error", content: { "application/problem+json": { schema: { $ref: "#/components/schemas/Problem" } } } } },
      securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "an API token (FM_API_TOKENS); required on /v1 when tokens are configured" } },
    },
  };
}
