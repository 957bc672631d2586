import { defineHandler } from "../sdk/define-handler.js";

/** Output = input. The benchmark's handler, so it does nothing else. */
export const echo = defineHandler({
  type: "echo",
  version: "1",
  execute: (ctx) => ctx.input,
});
