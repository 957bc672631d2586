import type { DeadTaskRow } from "../store/dead-tasks.js";
import type { OutboxMessage } from "../store/outbox.js";
import type { Rejection } from "../store/rejections.js";
import type { TaskAttemptRow, TaskOutcomeRow } from "../store/tasks.js";
import type { NewExecution } from "../store/executions.js";
import type { WaitTokenRow } from "../store/wait-tokens.js";
import type { MapItemsStarted, MapItemUpdate, MapRunEnded } from "../store/map-items.js";
import type { ExecutionState } from "../scheduler/state.js";
import type { ContextBlobRow } from "../store/context-blobs.js";

/**
 * A task of a tenant's execution, before admission: it is published (now or when due) if the
 * tenant has room in that lane, else it waits in the engine's tenant queue.
 */
export interface LaneDispatch {
  tenantId: string;
  /** `<region>/<handler>` */
  lane: string;
  /** `<taskId>:<attempt>` */
  taskKey: string;
  messages: OutboxMessage[];
  notBefore?: Date;
}

/** A tenant's attempt that stopped counting against its lane (settled, cancelled, timed out). */
export interface LaneRelease {
  tenantId: string;
  lane: string;
  taskKey: string;
}

/** What one execution's state change produces besides its new state. */
export interface ExecutionEffects {
  taskAttempts: TaskAttemptRow[];
  /** Published right after commit. */
  messages: OutboxMessage[];
  /** Published when due (retries after their backoff). */
  delayed: Array<{ notBefore: Date; messages: OutboxMessage[] }>;
  laneDispatches: LaneDispatch[];
  laneReleases: LaneRelease[];
  /** Steps that started waiting: their resume tokens. */
  waitsStarted: WaitTokenRow[];
  /** Tokens of waits that are over (resumed, or their execution ended). */
  waitsEnded: string[];
  /** The attempt that waited, with how long it was paused (usage). */
  taskPauses: Array<{ taskId: string; attempt: number; pausedMs: number }>;
  /** Map steps whose run started: their lists, one row per item. */
  mapRuns: MapItemsStarted[];
  /** Map items that moved (dispatched, completed, failed). */
  mapItems: MapItemUpdate[];
  /** Map runs that ended before all their items did. */
  mapRunsEnded: MapRunEnded[];
}

/**
 * Everything one transaction writes, collected in memory first so that it can be persisted
 * in a few set-based statements. Effects are kept per execution so that a start that turns
 * out to be a duplicate can be dropped with everything it would have caused.
 */
export class Changes {
  readonly created: NewExecution[] = [];
  readonly updated = new Map<string, ExecutionState>();
  readonly effects = new Map<string, ExecutionEffects>();
  readonly taskOutcomes: TaskOutcomeRow[] = [];
  readonly rejections: Rejection[] = [];
  readonly deadTasks: DeadTaskRow[] = [];
  /** Blobs of offloaded contexts first referenced in this transaction (deleted when their execution ends). */
  readonly contextBlobs: ContextBlobRow[] = [];
  /** Tenant lanes to look at even though nothing of theirs changed here (the lane sweep). */
  readonly touchedLanes: Array<{ tenantId: string; lane: string }> = [];
  /**
   * Attempts whose results were applied on the assumption that they came from the region the
   * attempt was sent to (regions not read first): the write checks each against its task row.
   */
  readonly assumedRegions: Array<{ taskId: string; attempt: number; region: string }> = [];
  /** Flows started at the version this engine last knew as their latest (not read first): the write checks none is newer. */
  readonly assumedLatest: Array<{ flowId: string; version: number }> = [];

  of(executionId: string): ExecutionEffects {
    let e = this.effects.get(executionId);
    if (!e) {
      e = { taskAttempts: [], messages: [], delayed: [], laneDispatches: [], laneReleases: [], waitsStarted: [], waitsEnded: [], taskPauses: [], mapRuns: [], mapItems: [], mapRunsEnded: [] };
      this.effects.set(executionId, e);
    }
    return e;
  }

  /** Forgets the effects of executions that were not created (their start was a duplicate). */
  dropUncreated(createdIds: ReadonlySet<string>): void {
    for (const { state } of this.created) if (!createdIds.has(state.id)) this.effects.delete(state.id);
  }

  immediateMessages(): OutboxMessage[] {
    return [...this.effects.values()].flatMap((e) => e.messages);
  }

  delayedMessages(): Array<{ notBefore: Date; messages: OutboxMessage[] }> {
    return [...this.effects.values()].flatMap((e) => e.delayed);
  }

  laneDispatches(): LaneDispatch[] {
    return [...this.effects.values()].flatMap((e) => e.laneDispatches);
  }

  laneReleases(): LaneRelease[] {
    return [...this.effects.values()].flatMap((e) => e.laneReleases);
  }

  waitsStarted(): WaitTokenRow[] {
    return [...this.effects.values()].flatMap((e) => e.waitsStarted);
  }

  waitsEnded(): string[] {
    return [...this.effects.values()].flatMap((e) => e.waitsEnded);
  }

  taskPauses(): ExecutionEffects["taskPauses"] {
    return [...this.effects.values()].flatMap((e) => e.taskPauses);
  }

  mapRuns(): MapItemsStarted[] {
    return [...this.effects.values()].flatMap((e) => e.mapRuns);
  }

  mapRunsEnded(): MapRunEnded[] {
    return [...this.effects.values()].flatMap((e) => e.mapRunsEnded);
  }

  mapItems(): MapItemUpdate[] {
    return [...this.effects.values()].flatMap((e) => e.mapItems);
  }

  taskAttempts(): TaskAttemptRow[] {
    return [...this.effects.values()].flatMap((e) => e.taskAttempts);
  }
}
