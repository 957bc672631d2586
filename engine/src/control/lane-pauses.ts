import { toError, type Logger, type Subjects } from "@flowmonkey/shared";
import type { Db } from "../store/db.js";
import type { OutboxMessage } from "../store/outbox.js";
import { holdTasks, listPausedLanes, pauseLane, resumeLane, type PausedLaneRow } from "../store/paused-lanes.js";

/**
 * Paused lanes (`<region>/<handler>`), as the relay sees them. The set lives in Postgres so every
 * replica agrees; each replica re-reads it every `refreshMs` (and at once after its own
 * pause/resume). A replica that has not seen a pause yet may publish that lane's tasks for up
 * to `refreshMs`; one that has not seen a resume parks nothing wrongly, because parking
 * re-checks the database under a lock.
 */
export class LanePauses {
  #paused = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  readonly #db: Db;
  readonly #subjects: Subjects;
  readonly #log: Logger;

  constructor(options: { db: Db; subjects: Subjects; log: Logger }) {
    this.#db = options.db;
    this.#subjects = options.subjects;
    this.#log = options.log;
  }

  async start(refreshMs: number): Promise<void> {
    await this.refresh();
    this.#timer = setInterval(() => void this.refresh().catch((err: unknown) => this.#log.warn({ err: toError(err) }, "could not read paused lanes")), refreshMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  async refresh(): Promise<PausedLaneRow[]> {
    const rows = await listPausedLanes(this.#db);
    this.#paused = new Set(rows.map((r) => r.lane));
    return rows;
  }

  get active(): boolean {
    return this.#paused.size > 0;
  }

  /** Whether the lane `<region>/<handler>` is paused, as this replica last read it. */
  isPaused(region: string, handler: string): boolean {
    return this.#paused.size > 0 && this.#paused.has(`${region}/${handler}`);
  }

  async pause(lane: string, reason: string | undefined): Promise<void> {
    await pauseLane(this.#db, lane, reason);
    await this.refresh();
  }

  async resume(lane: string): Promise<{ wasPaused: boolean; released: number }> {
    const result = await resumeLane(this.#db, lane);
    await this.refresh();
    return result;
  }

  /**
   * The messages to publish now: task messages of paused lanes are parked in the database
   * (and left out); everything else, in order. Cheap when nothing is paused.
   */
  async withoutHeld(messages: OutboxMessage[]): Promise<OutboxMessage[]> {
    if (this.#paused.size === 0) return messages;
    const candidates: Array<{ key: string; lane: string; message: OutboxMessage }> = [];
    for (const m of messages) {
      const task = m.msgId ? this.#subjects.parseTask(m.subject) : undefined;
      if (!task || !m.msgId) continue;
      const lane = `${task.region}/${task.handler}`;
      if (this.#paused.has(lane)) candidates.push({ key: m.msgId, lane, message: m });
    }
    if (candidates.length === 0) return messages;
    const held = await holdTasks(this.#db, candidates);
    return held.size === 0 ? messages : messages.filter((m) => !(m.msgId !== undefined && held.has(m.msgId)));
  }
}
