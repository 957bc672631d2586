/**
 * Watching a mesh from outside while it is being killed: a NATS connection that reconnects
 * forever, a recorder of `fm.exec.>` events and `fm.progress.>` updates (receipt times kept),
 * a PostgreSQL pool onto the engine's database, and a seeded random source for kill schedules.
 */
import { connect } from "@nats-io/transport-node";
import type { NatsConnection, Subscription } from "@nats-io/nats-core";
import pg from "pg";
import type { ExecutionEvent, Names, Progress } from "@flowmonkey/shared";

/** A client connection that survives nats-server restarts (reconnects forever, quickly). */
export function connectReconnecting(url: string, name = "chaos observer"): Promise<NatsConnection> {
  return connect({ servers: url, name, maxReconnectAttempts: -1, reconnectTimeWait: 100, noAsyncTraces: true, timeout: 5000 });
}

export interface ReceivedEvent {
  event: ExecutionEvent;
  /** Date.now() at receipt. */
  at: number;
}

/** Every `fm.exec.>` event seen, per execution. Core subjects: events published while this connection is away are not seen. */
export class ExecEventRecorder {
  readonly byExecution = new Map<string, ReceivedEvent[]>();
  readonly all: ReceivedEvent[] = [];
  readonly #sub: Subscription;
  readonly #done: Promise<void>;

  constructor(nc: NatsConnection, names: Names) {
    const sub = (this.#sub = nc.subscribe(names.subjects.execAll));
    this.#done = (async () => {
      for await (const m of sub) {
        const event = JSON.parse(new TextDecoder().decode(m.data)) as ExecutionEvent;
        const r = { event, at: Date.now() };
        this.all.push(r);
        let list = this.byExecution.get(event.executionId);
        if (!list) this.byExecution.set(event.executionId, (list = []));
        list.push(r);
      }
    })();
  }

  /** How many events of `type` (and of `stepId`, when given) were seen for the execution. */
  count(executionId: string, type: ExecutionEvent["type"], stepId?: string): number {
    return (this.byExecution.get(executionId) ?? []).filter((r) => r.event.type === type && (stepId === undefined || r.event.stepId === stepId)).length;
  }

  /**
   * Executions (and steps, for step events) with more than one event of `type`. `distinct`:
   * count only events that differ in content — the same event published again (an outbox row
   * re-sent after an engine crash; events are at-least-once) is identical (up to key order), while
   * a result applied twice makes a second, different event (its own `at`).
   */
  duplicates(type: ExecutionEvent["type"], { distinct = false } = {}): Array<{ executionId: string; stepId?: string; n: number }> {
    const out: Array<{ executionId: string; stepId?: string; n: number }> = [];
    for (const [executionId, list] of this.byExecution) {
      const seen = new Map<string, Set<string>>();
      const counts = new Map<string, number>();
      for (const r of list) {
        if (r.event.type !== type) continue;
        const key = r.event.stepId ?? "";
        const body = canonical(r.event);
        let bodies = seen.get(key);
        if (!bodies) seen.set(key, (bodies = new Set()));
        if (distinct && bodies.has(body)) continue;
        bodies.add(body);
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
      for (const [stepId, n] of counts) if (n > 1) out.push({ executionId, ...(stepId ? { stepId } : {}), n });
    }
    return out;
  }

  /** How many events were received more than once, identical (re-published). */
  republished(): number {
    const seen = new Set<string>();
    let n = 0;
    for (const r of this.all) {
      const body = canonical(r.event);
      if (seen.has(body)) n++;
      else seen.add(body);
    }
    return n;
  }

  /** The first event after `at` matching `predicate`. */
  firstAfter(at: number, predicate: (e: ExecutionEvent) => boolean): ReceivedEvent | undefined {
    return this.all.find((r) => r.at >= at && predicate(r.event));
  }

  async stop(): Promise<void> {
    this.#sub.unsubscribe();
    await this.#done.catch(() => undefined);
  }
}

/** Receipt times of `fm.progress.>` updates per task attempt (`taskId:attempt`). */
export class ProgressRecorder {
  readonly byAttempt = new Map<string, Array<{ at: number; percent: number }>>();
  readonly #sub: Subscription;
  readonly #done: Promise<void>;

  constructor(nc: NatsConnection, names: Names) {
    const sub = (this.#sub = nc.subscribe(names.subjects.progressAll));
    this.#done = (async () => {
      for await (const m of sub) {
        const p = JSON.parse(new TextDecoder().decode(m.data)) as Progress;
        if (!p.taskId || !p.attempt) continue;
        const key = `${p.taskId}:${p.attempt}`;
        let list = this.byAttempt.get(key);
        if (!list) this.byAttempt.set(key, (list = []));
        list.push({ at: Date.now(), percent: p.percent });
      }
    })();
  }

  of(taskId: string, attempt: number): Array<{ at: number; percent: number }> {
    return this.byAttempt.get(`${taskId}:${attempt}`) ?? [];
  }

  async stop(): Promise<void> {
    this.#sub.unsubscribe();
    await this.#done.catch(() => undefined);
  }
}

/** JSON with object keys sorted: an event re-sent from its jsonb outbox row has its keys in another order. */
export function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

/** A small pool onto the engine's database; idle-client errors (a dropped database) are ignored. */
export function openPool(url: string): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max: 3 });
  pool.on("error", () => undefined);
  return pool;
}

/** mulberry32: a seeded PRNG, so a kill schedule can be replayed from its seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Summary statistics of a list of durations (ms). */
export function stats(values: number[]): { n: number; min?: number; median?: number; p90?: number; max?: number } {
  if (values.length === 0) return { n: 0 };
  const s = [...values].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  return { n: s.length, min: s[0]!, median: at(0.5), p90: at(0.9), max: s[s.length - 1]! };
}
