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

/**
 * Separates a handler type from the capabilities of a capability-qualified pool in the handler
 * token of a task subject (`gpu-job~fp16~gpu`) and in its consumer names. Neither handler types
 * nor capabilities are tokens that can contain it (TOKEN_PATTERN), and NATS allows it in subject
 * tokens and consumer names (checked on nats-server 2.9.10).
 */
export const POOL_SEPARATOR = "~";

/** A worker pool: a handler type and, for a capability-qualified pool, the full sorted capability set of its workers. */
export interface PoolKey {
  handler: string;
  capabilities: string[];
}

/** The canonical capability set of a pool: unique and sorted, so one set has one name. */
export function canonicalCapabilities(capabilities: readonly string[]): string[] {
  return [...new Set(capabilities)].sort();
}

/**
 * The pool token: `handler` for the plain pool, `handler~cap1~cap2` (sorted) for the pool of
 * the workers whose capabilities are exactly that set. Undefined when a part is not a token.
 */
export function poolToken(handler: string, capabilities: readonly string[] = []): string | undefined {
  if (!TOKEN_PATTERN.test(handler) || !capabilities.every((c) => TOKEN_PATTERN.test(c))) return undefined;
  return [handler, ...canonicalCapabilities(capabilities)].join(POOL_SEPARATOR);
}

/** `handler` or `handler~cap1~cap2` → its parts; undefined unless it is the canonical form poolToken builds. */
export function parsePoolToken(token: string): PoolKey | undefined {
  const [handler = "", ...capabilities] = token.split(POOL_SEPARATOR);
  if (!TOKEN_PATTERN.test(handler) || !capabilities.every((c) => TOKEN_PATTERN.test(c))) return undefined;
  const canonical = canonicalCapabilities(capabilities);
  if (canonical.length !== capabilities.length || canonical.some((c, i) => c !== capabilities[i])) return undefined;
  return { handler, capabilities };
}

/** Whether every capability in `required` is in `offered`. */
export function hasCapabilities(offered: readonly string[], required: readonly string[] | undefined): boolean {
  return (required ?? []).every((c) => offered.includes(c));
}
