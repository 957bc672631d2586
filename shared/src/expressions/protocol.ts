/** What the pool sends an evaluator process: the expressions of one value, over one data. */
export interface EvaluationRequest {
  expressions: string[];
  data: unknown;
  timeoutMs: number;
  maxDepth: number;
  maxResultBytes: number;
}

/** An evaluation's answer: every value as one JSON array, or the first expression that failed. */
export type EvaluationReply =
  | { ok: true; json: string }
  | { ok: false; index: number; stage: "parse" | "evaluate" | "result"; message: string };

/** The method name the evaluator process registers with workerpool. */
export const EVALUATE_METHOD = "evaluate";

/** The event an evaluator process emits as it begins an evaluation. */
export const EVALUATION_STARTED = "started";
