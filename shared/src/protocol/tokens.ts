import { z } from "zod";

/**
 * One subject token: what flow ids, step ids, handler types, regions and execution ids may
 * contain. NATS reserves `.`, `*`, `>` and whitespace, so they are refused here, at the edge,
 * rather than producing a subject that means something else.
 */
export const TOKEN_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;

export const Token = z
  .string()
  .regex(TOKEN_PATTERN, "must be 1-128 letters, digits, '-' or '_' (it becomes a NATS subject token)");

/** Event names may span several tokens (`order.paid`), but each token follows the same rule. */
export const EVENT_NAME_PATTERN = /^[A-Za-z0-9_-]{1,128}(\.[A-Za-z0-9_-]{1,128}){0,7}$/;

export const EventName = z
  .string()
  .regex(EVENT_NAME_PATTERN, "must be dot-separated tokens of letters, digits, '-' or '_'");

export const Priority = z.enum(["high", "normal", "low"]);
export type Priority = z.infer<typeof Priority>;
export const PRIORITIES = Priority.options;

export function isToken(value: string): boolean {
  return TOKEN_PATTERN.test(value);
}
