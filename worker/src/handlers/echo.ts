import { defineHandler } from "../sdk/define-handler.js";

/** Output = input. The benchmark's handler, so it does nothing else. */
export const echo = defineHandler({
  type: "echo",
  version: "1",
  docs: {
    summary: "Returns its input unchanged: a placeholder step, a way to shape data with the step's input expressions, and the benchmark's handler.",
    output: "the step's input, as it is",
    example: { input: { orderId: "A-17", total: 42 }, output: { orderId: "A-17", total: 42 } },
  },
  execute: (ctx) => ctx.input,
});
