import type { Subjects, Task } from "@flowmonkey/shared";

/**
 * What dispatch leaves on a task's outbox message when its step lists `vault:` keys: the
 * task (the message's body) and where to send the step's failure if its secrets cannot be
 * handed out. Engine-internal: the seal pass removes it before anything is written.
 */
export interface SealRequest {
  task: Task;
  keys: string[];
  /** fm.results.<region>: the engine concludes the attempt there, as a worker would have. */
  failTo: string;
}

/** The hook dispatch calls: a seal request for a step with secrets, nothing for one without. */
export function sealRequestOf(keys: readonly string[] | undefined, task: Task, subjects: Subjects): { seal?: SealRequest } {
  if (!keys || keys.length === 0) return {};
  return { seal: { task, keys: [...new Set(keys)], failTo: subjects.results(task.metadata.region) } };
}
