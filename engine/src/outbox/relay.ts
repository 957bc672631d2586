import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { abortableDelay, encode, toError, type Logger } from "@flowmonkey/shared";
import type { LanePauses } from "../control/lane-pauses.js";
import type { Db } from "../store/db.js";
import { claimDueOutbox, deleteOutbox, releaseOutboxClaim, type OutboxMessage } from "../store/outbox.js";
import type { RoutedMessage } from "../regions/publish-routed.js";

export interface RelayOptions {
  db: Db;
  nc: NatsConnection;
  log: Logger;
  /** Unacknowledged JetStream publishes allowed before committers are made to wait. */
  maxInFlight?: number;
  sweepIntervalMs?: number;
  /**
   * Region routing (regions/publish-routed.ts): tasks for which `routes(route)` holds are published
   * through it — residency, least-busy, failover — instead of straight to their subject.
   */
  routing?: { routes(route: RoutedMessage["route"] | undefined): boolean; publish(m: RoutedMessage): Promise<void> } | undefined;
  /** Lanes an operator paused: their tasks are parked instead of published. */
  pauses?: LanePauses | undefined;
}

export type Relay = ReturnType<typeof createRelay>;

const DELETE_EVERY_MS = 100;
/** A row whose publish failed is tried again after this (instead of after its whole claim). */
const RETRY_FAILED_MS = 1000;

/**
 * The engine's only publisher. Rows committed by this process are published right after
 * their commit (no polling on the hot path); a periodic sweep publishes rows whose owner
 * died before publishing, and delayed rows (retries) once they are due. Tasks go through
 * JetStream with their Nats-Msg-Id, so a row published twice stores each task once.
 */
export function createRelay(options: RelayOptions) {
  const { db, nc, log } = options;
  const js = jetstream(nc);
  const maxInFlight = options.maxInFlight ?? 8192;
  const sweepIntervalMs = options.sweepIntervalMs ?? 500;
  const abort = new AbortController();
  let inFlight = 0;
  let capacityWaiters: Array<() => void> = [];
  let toDelete: number[] = [];
  let deleting: Promise<void> | undefined;
  let sweeping: Promise<void> | undefined;
  let published = 0;
  let wakeTimer: NodeJS.Timeout | undefined;
  let wakeSweep: (() => void) | undefined;

  async function publishAll(all: OutboxMessage[]): Promise<void> {
    // Tasks of lanes an operator paused are parked, not published (control/lane-pauses.ts).
    const messages = options.pauses?.active ? await options.pauses.withoutHeld(all) : all;
    const acks: Array<Promise<unknown>> = [];
    for (const m of messages) {
      if (m.route && options.routing?.routes(m.route)) {
        acks.push(options.routing.publish({ subject: m.subject, body: m.body, msgId: m.msgId, route: m.route }));
        continue;
      }
      const data = encode(m.body);
      if (m.msgId) acks.push(js.publish(m.subject, data, { msgID: m.msgId }));
      else nc.publish(m.subject, data);
    }
    await Promise.all(acks);
    published += messages.length;
  }

  let deleteTimer: NodeJS.Timeout | undefined;

  /**
   * Sent rows are deleted in bulk, at most every DELETE_EVERY_MS: every statement outside a
   * batch's transaction is one more commit (and WAL flush), so one DELETE serves many batches.
   */
  function scheduleDelete(id: number) {
    toDelete.push(id);
    if (toDelete.length >= 2000) startDeleting();
    else deleteTimer ??= setTimeout(startDeleting, DELETE_EVERY_MS);
  }

  function startDeleting() {
    clearTimeout(deleteTimer);
    deleteTimer = undefined;
    deleting ??= flushDeletes();
  }

  async function flushDeletes(): Promise<void> {
    // Deleting sent rows is off the hot path: batched, one statement for many rows.
    const ids = toDelete;
    toDelete = [];
    await deleteOutbox(db, ids).catch((err) => log.warn({ err: toError(err), rows: ids.length }, "outbox delete failed; the sweep retries"));
    deleting = undefined;
    if (toDelete.length > 0) deleteTimer ??= setTimeout(startDeleting, DELETE_EVERY_MS);
  }

  function release(n: number) {
    inFlight -= n;
    if (inFlight <= maxInFlight && capacityWaiters.length) {
      const w = capacityWaiters;
      capacityWaiters = [];
      for (const resolve of w) resolve();
    }
  }

  /** A failed publish (the task queue full, the link down) leaves the row to be tried again soon. */
  async function retrySoon(id: number): Promise<void> {
    await releaseOutboxClaim(db, id, RETRY_FAILED_MS).catch(() => undefined);
  }

  async function sweepOnce(): Promise<number> {
    const rows = await claimDueOutbox(db, { limit: 200, leaseMs: 30_000 });
    let failed = 0;
    let firstError: unknown;
    for (const row of rows) {
      try {
        await publishAll(row.messages);
        scheduleDelete(row.id);
      } catch (err) {
        failed++;
        firstError ??= err;
        await retrySoon(row.id);
      }
    }
    // One line per sweep, not per row: a full queue can hold back thousands of rows.
    if (failed > 0) log.warn({ err: toError(firstError), rows: failed }, "outbox publish failed; trying again shortly");
    return rows.length;
  }

  return {
    /**
     * After a commit: publishes the row this process just committed (a failure leaves it to
     * the sweep) and brings the sweep forward when the commit scheduled a retry sooner.
     */
    afterCommit(committed: { outbox?: { id: number; messages: OutboxMessage[] }; nextDueAt?: Date }): void {
      if (committed.nextDueAt) this.sweepAt(committed.nextDueAt);
      const row = committed.outbox;
      if (!row) return;
      const n = row.messages.length;
      inFlight += n;
      publishAll(row.messages)
        .then(() => scheduleDelete(row.id))
        .catch((err: unknown) => {
          log.warn({ err: toError(err), outboxId: row.id }, "publish after commit failed; trying again shortly");
          return retrySoon(row.id);
        })
        .finally(() => release(n));
    },

    /** Sweeps at `at` (a delayed row's due time) instead of waiting for the next interval. */
    sweepAt(at: Date): void {
      const inMs = at.getTime() - Date.now();
      if (inMs >= sweepIntervalMs) return;
      clearTimeout(wakeTimer);
      wakeTimer = setTimeout(() => wakeSweep?.(), Math.max(0, inMs) + 5);
      wakeTimer.unref();
    },

    /** Resolves when fewer than maxInFlight publishes are unacknowledged: backpressure for consumers. */
    capacity(): Promise<void> {
      return inFlight <= maxInFlight ? Promise.resolve() : new Promise((resolve) => capacityWaiters.push(resolve));
    },

    start(): void {
      sweeping = (async () => {
        while (!abort.signal.aborted) {
          try {
            // A full page means more may be due: go again without sleeping.
            if ((await sweepOnce()) === 200) continue;
          } catch (err) {
            log.warn({ err: toError(err) }, "outbox sweep failed");
          }
          await new Promise<void>((resolve) => {
            wakeSweep = resolve;
            void abortableDelay(sweepIntervalMs, abort.signal).then(() => resolve());
          });
          wakeSweep = undefined;
        }
      })();
    },

    sweepOnce,

    stats: () => ({ inFlight, published }),

    /** Waits for publishes in flight and pending deletes; the sweep stops. */
    async close(): Promise<void> {
      abort.abort();
      clearTimeout(wakeTimer);
      await sweeping;
      // Shutdown only: wait for the acks of publishes already sent.
      while (inFlight > 0) await abortableDelay(10);
      clearTimeout(deleteTimer);
      await deleting;
      if (toDelete.length) await flushDeletes();
      clearTimeout(deleteTimer);
    },
  };
}
