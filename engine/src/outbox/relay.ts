import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { abortableDelay, toError, type Logger, type TaskResult } from "@flowmonkey/shared";
import { encodedBody } from "./encoded-body.js";
import type { LanePauses } from "../control/lane-pauses.js";
import type { Db } from "../store/db.js";
import {
  attemptsStillDispatched,
  claimDueOutbox,
  deleteOutbox,
  releaseOutboxClaim,
  settleOutboxRow,
  isInternal,
  runningItemChildren,
  type ChildStart,
  type OutboxDeadLetter,
  type OutboxMessage,
  type OutboxRow,
} from "../store/outbox.js";
import type { RoutedMessage } from "../regions/publish-routed.js";
import { type CarriedTask, type CheckpointCarry, mayFindCheckpoint } from "../context/checkpoint-carry.js";
import { attemptKey, conclusionResult, taskIdentityOf, unsentTaskResult } from "./conclusions.js";
import { classifyPublishFailure, MessageTooLargeError, PUBLISH_HEADROOM_BYTES, type PublishFailure } from "./publish-failure.js";

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
  /**
   * Applies the engine's own failure results for tasks that cannot be sent (conclusions written
   * before commit, and tasks given up on here), as results are applied. Absent (tools, tests
   * of the relay alone): such rows wait.
   */
  conclude?: ((results: TaskResult[]) => Promise<void>) | undefined;
  /** Tries a message may fail for an unknown reason before it is given up on (default 5). */
  maxTries?: number;
  /** Starts sub-flow steps' child executions (idempotent: each has its own id). Absent: such rows wait. */
  startChildren?: ((children: ChildStart[]) => Promise<void>) | undefined;
  /** Cancels child executions whose step attempt ended (one already over is no error). Absent: such rows wait. */
  cancelChildren?: ((executionIds: string[]) => Promise<void>) | undefined;
  /** Copies a later attempt's checkpoint into the region it is published to (context/checkpoint-carry.ts). Routed tasks: the routing does. */
  carryCheckpoint?: CheckpointCarry | undefined;
}

export type Relay = ReturnType<typeof createRelay>;

const DELETE_EVERY_MS = 100;
/** A row whose publish failed is tried again after this (instead of after its whole claim). */
const RETRY_FAILED_MS = 1000;
/** A dead letter keeps the message itself up to this size (else only its size). */
const DEAD_LETTER_BODY_MAX_BYTES = 64 * 1024;

/** One message of a row that was not sent, and why. */
interface Unsent {
  message: OutboxMessage;
  error: unknown;
}

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
  const maxTries = options.maxTries ?? 5;
  const abort = new AbortController();
  let inFlight = 0;
  let capacityWaiters: Array<() => void> = [];
  let toDelete: number[] = [];
  let deleting: Promise<void> | undefined;
  let sweeping: Promise<void> | undefined;
  let published = 0;
  let wakeTimer: NodeJS.Timeout | undefined;
  let wakeSweep: (() => void) | undefined;

  /** The server's limit, read from its INFO each time (a reconnect may land on a server with another). */
  const maxPayload = () => nc.info?.max_payload ?? 1024 * 1024;

  /**
   * Publishes a row's messages and applies its conclusions; answers what was not sent. Each
   * message stands alone: one the server refuses does not hold back the others of its row.
   */
  async function publishAll(all: OutboxMessage[]): Promise<Unsent[]> {
    const unsent: Unsent[] = [];
    const conclusions = all.filter((m) => m.conclude);
    const children = all.filter((m) => m.startChild);
    const cancels = all.filter((m) => m.cancelChild || m.cancelChildrenOf);
    const publishable = conclusions.length + children.length + cancels.length > 0 ? all.filter((m) => !isInternal(m)) : all;
    // Tasks of lanes an operator paused are parked, not published (control/lane-pauses.ts).
    const messages = options.pauses?.active ? await options.pauses.withoutHeld(publishable) : publishable;
    const acks: Array<Promise<unknown>> = [];
    for (const m of messages) {
      acks.push(publishOne(m).catch((error: unknown) => void unsent.push({ message: m, error })));
    }
    if (conclusions.length > 0) acks.push(applyConclusions(conclusions).catch((error: unknown) => void unsent.push(...conclusions.map((message) => ({ message, error })))));
    const internal = (messages: OutboxMessage[], apply: (() => Promise<void>) | undefined, what: string) => {
      if (messages.length === 0) return;
      const applied = apply ? apply() : Promise.reject(new Error(`the relay cannot ${what}`));
      acks.push(applied.catch((error: unknown) => void unsent.push(...messages.map((message) => ({ message, error })))));
    };
    internal(children, options.startChildren && (() => options.startChildren!(children.map((m) => m.startChild!))), "start sub-flows");
    const cancelAll = async () => {
      const ofRuns = await runningItemChildren(db, cancels.flatMap((m) => (m.cancelChildrenOf ? [m.cancelChildrenOf] : [])));
      await options.cancelChildren!([...cancels.flatMap((m) => (m.cancelChild ? [m.cancelChild] : [])), ...ofRuns]);
    };
    internal(cancels, options.cancelChildren && cancelAll, "cancel sub-flows");
    await Promise.all(acks);
    published += messages.length;
    return unsent;
  }

  /** Measured before publishing: a message over max_payload is refused here with its size, never sent to fail. */
  function publishOne(m: OutboxMessage): Promise<unknown> {
    const data = encodedBody(m.body);
    const bytes = data.byteLength + (m.msgId ? PUBLISH_HEADROOM_BYTES : 0);
    if (bytes > maxPayload()) return Promise.reject(new MessageTooLargeError(bytes, maxPayload()));
    if (m.route && options.routing?.routes(m.route)) return options.routing.publish({ subject: m.subject, body: m.body, msgId: m.msgId, route: m.route });
    const task = m.route ? (m.body as CarriedTask & { metadata: { region: string } }) : undefined;
    if (task && options.carryCheckpoint && mayFindCheckpoint(task)) {
      const carry = options.carryCheckpoint;
      return carry(task.metadata.region, task).then(() => js.publish(m.subject, data, m.msgId ? { msgID: m.msgId } : undefined));
    }
    if (m.msgId) return js.publish(m.subject, data, { msgID: m.msgId });
    nc.publish(m.subject, data);
    return Promise.resolve();
  }

  async function applyConclusions(conclusions: OutboxMessage[]): Promise<void> {
    if (!options.conclude) throw new Error("the relay has no conclude handler: the engine's own results wait");
    await options.conclude(conclusions.map(conclusionResult));
  }

  /**
   * After a try that left messages unsent: messages the server refuses (too large) and those
   * that failed `maxTries` times for an unknown reason are given up on — recorded in
   * outbox_dead_letters, and a task's attempt fails (PAYLOAD_TOO_LARGE / PUBLISH_FAILED) so
   * its step does not wait forever. The rest stay, alone, to be tried again soon; what was sent
   * is never sent again. Failures the mesh recovers from (a full queue, a cut link) stay for
   * as long as it takes.
   */
  async function settleUnsent(row: OutboxRow, unsent: Unsent[]): Promise<PublishFailure> {
    const tries = row.tries + 1;
    const remaining: OutboxMessage[] = [];
    const dead: OutboxDeadLetter[] = [];
    const failed: TaskResult[] = [];
    let first: PublishFailure | undefined;
    for (const { message, error } of unsent) {
      const failure = classifyPublishFailure(error);
      first ??= failure;
      // The engine's own work (conclusions, sub-flow starts and cancels) is never given up on.
      if (isInternal(message) || failure.kind === "transient" || (failure.kind === "unknown" && tries < maxTries)) {
        remaining.push(message);
        continue;
      }
      const task = taskIdentityOf(message);
      const bytes = Buffer.byteLength(JSON.stringify(message.body));
      const reason = `${failure.message} (after ${tries} ${tries === 1 ? "try" : "tries"})`;
      dead.push({
        subject: message.subject,
        msgId: message.msgId,
        executionId: task?.executionId ?? executionIdOf(message.body),
        code: failure.code,
        reason,
        bytes,
        tries,
        ...(bytes <= DEAD_LETTER_BODY_MAX_BYTES ? { body: message.body } : {}),
      });
      if (task) failed.push(unsentTaskResult(task, { code: failure.code, message: `its task could not be published: ${reason}`, retryable: false }));
      log.warn(
        { outboxId: row.id, subject: message.subject, executionId: task?.executionId, stepId: task?.stepId, attempt: task?.attempt, code: failure.code, bytes, tries },
        "outbox message given up on (dead-lettered)",
      );
    }
    // The step fails first: if that cannot be done now, the task stays and is given up on at the next try.
    if (failed.length > 0) {
      try {
        await applyConclusions(failed.map((body) => ({ subject: "", body, conclude: true as const })));
      } catch (err) {
        log.warn({ err: toError(err), outboxId: row.id }, "could not fail the steps of unsendable tasks; trying again shortly");
        const keep = new Set(failed.map((r) => `${r.taskId}:${r.attempt}`));
        for (const m of unsent.map((u) => u.message)) if (m.msgId && keep.has(m.msgId)) remaining.push(m);
        dead.splice(0, dead.length, ...dead.filter((d) => !d.msgId || !keep.has(d.msgId)));
      }
    }
    await settleOutboxRow(db, { id: row.id, remaining, dead, lastError: `${first!.code}: ${first!.message}`, retryInMs: RETRY_FAILED_MS });
    return first!;
  }

  /**
   * A row tried before may hold tasks of attempts that are over meanwhile (the execution was
   * cancelled, the attempt timed out): those are dropped rather than sent to a worker.
   */
  async function withoutStaleTasks(row: OutboxRow): Promise<OutboxMessage[]> {
    if (row.tries === 0) return row.messages;
    const tasks = row.messages.map(taskIdentityOf);
    const live = await attemptsStillDispatched(db, tasks.flatMap((t) => (t ? [t] : [])));
    const kept = row.messages.filter((_, i) => !tasks[i] || live.has(attemptKey(tasks[i])));
    if (kept.length < row.messages.length) log.info({ outboxId: row.id, dropped: row.messages.length - kept.length }, "outbox: dropped tasks of attempts that are over");
    return kept;
  }

  /** Publishes one row and settles it: deleted when all went out, else narrowed to what is left. */
  async function relayRow(row: OutboxRow): Promise<PublishFailure | undefined> {
    const messages = await withoutStaleTasks(row);
    const unsent = await publishAll(messages);
    if (unsent.length === 0) {
      scheduleDelete(row.id);
      return undefined;
    }
    return settleUnsent({ ...row, messages }, unsent);
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

  /** A row that could not even be settled (the database) is left to the sweep a second from now. */
  async function retrySoon(id: number): Promise<void> {
    await releaseOutboxClaim(db, id, RETRY_FAILED_MS).catch(() => undefined);
  }

  async function sweepOnce(): Promise<number> {
    const rows = await claimDueOutbox(db, { limit: 200, leaseMs: 30_000 });
    let failed = 0;
    let firstError: PublishFailure | undefined;
    for (const row of rows) {
      try {
        const failure = await relayRow(row);
        if (failure) {
          failed++;
          firstError ??= failure;
        }
      } catch (err) {
        // Reading or settling the row failed (the database): it is tried again soon.
        failed++;
        firstError ??= classifyPublishFailure(err);
        await retrySoon(row.id);
      }
    }
    // One line per sweep, not per row: a full queue can hold back thousands of rows.
    if (failed > 0) log.warn({ code: firstError?.code, error: firstError?.message, rows: failed }, "outbox publish failed; trying again shortly");
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
      relayRow({ ...row, tries: 0 })
        .then((failure) => {
          if (failure) log.warn({ outboxId: row.id, code: failure.code, error: failure.message }, "publish after commit failed; trying again shortly");
        })
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

/** The execution an event or notice is about, for the dead-letter record (best effort). */
function executionIdOf(body: unknown): string | undefined {
  if (typeof body !== "object" || body === null) return undefined;
  if ("executionId" in body && typeof body.executionId === "string") return body.executionId;
  if ("task" in body) return executionIdOf(body.task);
  return undefined;
}
