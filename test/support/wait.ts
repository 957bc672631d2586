/**
 * Deadline-based waiting for tests. No fixed sleeps: poll a condition until it
 * holds, or read messages with a timeout. A timeout error carries the last value
 * (or the last thrown error) as its `cause`, so a failure says what was seen.
 */
import type { Msg, NatsConnection, Subscription } from "@nats-io/nats-core";
import { setTimeout as delay } from "node:timers/promises";

export interface WaitForOptions {
  timeoutMs?: number;
  intervalMs?: number;
  /** Describes what was awaited; prefixed to the timeout error. */
  message?: string;
}

export class WaitTimeoutError extends Error {
  override name = "WaitTimeoutError";
}

/**
 * Call `fn` until it returns something other than `undefined`/`false` (or stops
 * throwing) and return that value. `fn` is called at least once even with a zero timeout.
 */
export async function waitFor<T>(
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  { timeoutMs = 10_000, intervalMs = 25, message }: WaitForOptions = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: { kind: "value"; value: unknown } | { kind: "error"; error: unknown } | undefined;
  let attempts = 0;
  for (;;) {
    attempts++;
    try {
      const value = await fn();
      if (value !== undefined && value !== false) return value;
      last = { kind: "value", value };
    } catch (error) {
      last = { kind: "error", error };
    }
    if (Date.now() + intervalMs > deadline) break;
    await delay(intervalMs);
  }
  const what = message ?? "condition";
  const detail =
    last?.kind === "error" ? `last error: ${errorText(last.error)}` : `last value: ${describe(last?.value)}`;
  const cause = last?.kind === "error" ? last.error : last?.value;
  throw new WaitTimeoutError(`timed out after ${timeoutMs} ms (${attempts} attempts) waiting for ${what}; ${detail}`, {
    cause,
  });
}

export interface MessageWaitOptions {
  timeoutMs?: number;
}

interface IteratorState {
  iterator: AsyncIterator<Msg>;
  /** A next() still outstanding from a call that timed out; the next caller takes it over so no message is lost. */
  pending: Promise<IteratorResult<Msg>> | undefined;
}

// A nats-core Subscription yields one iterator for its lifetime, so it is kept per subscription.
const iterators = new WeakMap<Subscription, IteratorState>();

function stateOf(sub: Subscription): IteratorState {
  let state = iterators.get(sub);
  if (state === undefined) {
    state = { iterator: sub[Symbol.asyncIterator](), pending: undefined };
    iterators.set(sub, state);
  }
  return state;
}

/**
 * The next message of a core subscription, or a timeout error. Use either these
 * helpers or your own `for await` on a subscription, not both.
 */
export async function nextMessage(sub: Subscription, { timeoutMs = 10_000 }: MessageWaitOptions = {}): Promise<Msg> {
  const state = stateOf(sub);
  const pending = state.pending ?? state.iterator.next();
  state.pending = pending;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = Symbol("timeout");
  const outcome = await Promise.race([
    pending,
    new Promise<typeof timedOut>((res) => {
      timer = setTimeout(() => res(timedOut), timeoutMs);
    }),
  ]).finally(() => clearTimeout(timer));
  if (outcome === timedOut) {
    throw new WaitTimeoutError(`no message on ${sub.getSubject()} within ${timeoutMs} ms`);
  }
  state.pending = undefined;
  if (outcome.done) {
    const closed = await sub.closed;
    throw new Error(`subscription ${sub.getSubject()} closed before a message arrived`, { cause: closed ?? undefined });
  }
  return outcome.value;
}

/** Exactly `n` messages from a core subscription within one overall deadline. */
export async function collect(sub: Subscription, n: number, { timeoutMs = 10_000 }: MessageWaitOptions = {}): Promise<Msg[]> {
  const deadline = Date.now() + timeoutMs;
  const messages: Msg[] = [];
  while (messages.length < n) {
    try {
      messages.push(await nextMessage(sub, { timeoutMs: Math.max(1, deadline - Date.now()) }));
    } catch (err) {
      throw new WaitTimeoutError(
        `collected ${messages.length} of ${n} messages on ${sub.getSubject()} within ${timeoutMs} ms`,
        { cause: { received: messages.map((m) => ({ subject: m.subject, data: m.string() })), error: err } },
      );
    }
  }
  return messages;
}

/**
 * Resolves when `nc` reports a reconnect. Call it *before* the action that drops
 * the connection (status events are only seen from the call on):
 *
 *   const reconnected = waitForReconnect(nc);
 *   await server.restart();
 *   await reconnected;
 */
export function waitForReconnect(nc: NatsConnection, { timeoutMs = 10_000 }: MessageWaitOptions = {}): Promise<void> {
  const statuses = nc.status();
  const stop = (): void => (statuses as { stop?: () => void }).stop?.();
  const seen: string[] = [];
  const reconnected = (async () => {
    for await (const s of statuses) {
      seen.push(s.type);
      if (s.type === "reconnect") return;
    }
    throw new Error(`connection closed before it reconnected (statuses: ${seen.join(", ") || "none"})`);
  })();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new WaitTimeoutError(`no reconnect within ${timeoutMs} ms (statuses: ${seen.join(", ") || "none"})`)),
      timeoutMs,
    );
  });
  return Promise.race([reconnected, timeout]).finally(() => {
    clearTimeout(timer);
    stop();
  });
}

function describe(value: unknown): string {
  try {
    const text = JSON.stringify(value);
    return text === undefined ? String(value) : text.length > 500 ? `${text.slice(0, 500)}…` : text;
  } catch {
    return String(value);
  }
}

function errorText(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : describe(error);
}
