import type { AnyHandler } from "../sdk/define-handler.js";
import { delay } from "./delay.js";
import { echo } from "./echo.js";
import { fail } from "./fail.js";
import { httpRequest } from "./http-request.js";
import { transform } from "./transform.js";
import { wait } from "./wait.js";

/** The handlers every worker ships, by type. */
export const builtInHandlers: Readonly<Record<string, AnyHandler>> = Object.freeze({
  [echo.type]: echo,
  [delay.type]: delay,
  [fail.type]: fail,
  [httpRequest.type]: httpRequest,
  [transform.type]: transform,
  [wait.type]: wait,
});

export const BUILT_IN_HANDLER_TYPES = Object.keys(builtInHandlers);

export { delay, echo, fail, httpRequest, transform, wait };
