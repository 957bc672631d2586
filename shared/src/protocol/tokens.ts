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

/**
 * Region names (us-east-1, eu-west-1): lowercase letters, digits and '-', no '_' — so that
 * `pool_<region>_<handler>` consumer names can never collide across two pools.
 */
export const REGION_PATTERN = /^[a-z0-9][a-z0-9-]{0,63}$/;
export const Region = z.string().regex(REGION_PATTERN, "must be lowercase letters, digits and '-' (e.g. eu-west-1)");

/**
 * Subject prefixes: lowercase letters, digits and '_'. Stream and bucket names are derived by
 * changing case, which must not map two prefixes onto one name ("fm" and "FM" would).
 */
export const PREFIX_PATTERN = /^[a-z][a-z0-9_]{0,31}$/;
export const Prefix = z.string().regex(PREFIX_PATTERN, "must start with a lowercase letter; lowercase letters, digits, '_' (≤ 32)");

export const Priority = z.enum(["high", "normal", "low"]);
export type Priority = z.infer<typeof Priority>;
export const PRIORITIES = Priority.options;

export function isToken(value: string): boolean {
  return TOKEN_PATTERN.test(value);
}
