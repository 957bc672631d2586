import { readFile } from "node:fs/promises";
import { extname } from "node:path";
import { parse as parseYaml } from "yaml";
import { assertStorable } from "../protocol/storable-json.js";
import { FmError } from "../errors/fm-error.js";
import { toError } from "../errors/coerce.js";
import { describeIssues } from "../protocol/codec.js";
import { FlowDefinition } from "./definition.js";
import { buildGraph } from "./graph.js";

/** Parses flow text (YAML is a superset of JSON) and validates it, graph included. */
export function parseFlowDefinition(text: string, source = "flow"): FlowDefinition {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (cause) {
    throw new FmError("INVALID_FLOW", `${source}: not valid YAML/JSON: ${toError(cause).message}`, { cause });
  }
  // YAML escapes ("\0") reach the same text PostgreSQL refuses as JSON's do.
  assertStorable(raw, source);
  const parsed = FlowDefinition.safeParse(raw);
  if (!parsed.success) throw new FmError("INVALID_FLOW", `${source}: ${describeIssues(parsed.error)}`);
  buildGraph(parsed.data);
  return parsed.data;
}

/** Reads a .yaml, .yml or .json flow file; errors name the file and the bad field. */
export async function loadFlowFile(path: string): Promise<FlowDefinition> {
  const ext = extname(path).toLowerCase();
  if (![".yaml", ".yml", ".json"].includes(ext)) {
    throw new FmError("INVALID_FLOW", `${path}: flow files must end in .yaml, .yml or .json`);
  }
  return parseFlowDefinition(await readFile(path, "utf8"), path);
}
