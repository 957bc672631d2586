import type { FlowDefinition } from "@flowmonkey/shared";

/**
 * Warnings for a pushed flow whose steps name a handler no live worker serves where the step
 * may run: its tasks would wait for one (and time out). A warning, not a refusal — the worker
 * may simply not be started yet — but said at once instead of discovered as a silent hang.
 */
export function unservedHandlerWarnings(definition: FlowDefinition, regionsServing: (handler: string) => string[]): string[] {
  const warnings: string[] = [];
  for (const step of definition.steps) {
    // A sub-flow step runs on no worker.
    if (step.handler === undefined) continue;
    const serving = regionsServing(step.handler);
    const pinned = step.region ?? definition.defaults?.region;
    if (serving.length === 0) {
      warnings.push(`step ${step.id}: no live worker serves handler ${step.handler} in any region; its tasks will wait for one`);
    } else if (pinned !== undefined && !serving.includes(pinned)) {
      warnings.push(`step ${step.id}: no live worker serves handler ${step.handler} in ${pinned} (it is served in ${serving.join(", ")}); its tasks will wait for one there`);
    }
  }
  return warnings;
}
