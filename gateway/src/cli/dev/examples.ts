import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { loadFlowFile, type ApiClient, type FlowDefinition } from "@flowmonkey/shared";
import type { Output } from "../output.js";
import { devPaths } from "./paths.js";

export interface Example {
  file: string;
  definition: FlowDefinition;
}

/** Every examples/flows/*.yaml|yml|json, validated locally (a broken example stops `dev` early). */
export async function loadExamples(dir = devPaths.examples): Promise<Example[]> {
  const files = (await readdir(dir).catch(() => [] as string[])).filter((f) => /\.(ya?ml|json)$/i.test(f)).sort();
  return Promise.all(files.map(async (f) => ({ file: join(dir, f), definition: await loadFlowFile(join(dir, f)) })));
}

/** Regions the examples need workers in: each step's `region`, each flow's default, and ours. */
export function regionsOf(examples: Example[], defaultRegion: string): string[] {
  const regions = new Set([defaultRegion]);
  for (const { definition } of examples) {
    if (definition.defaults?.region) regions.add(definition.defaults.region);
    for (const step of definition.steps) if (step.region) regions.add(step.region);
  }
  return [...regions].sort();
}

export async function pushExamples(api: ApiClient, examples: Example[], out: Output): Promise<void> {
  for (const { file, definition } of examples) {
    const reply = await api.putFlow(definition);
    out.info(`flow ${reply.flowId} v${reply.version} ${reply.created ? "registered" : "unchanged"} (${file})`);
  }
}
