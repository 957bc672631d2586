import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Logger, Names, RegionTopology, ResidencyRules } from "@flowmonkey/shared";
import type { Db } from "../store/db.js";
import type { CheckpointCarry } from "../context/checkpoint-carry.js";
import { createRoutedPublisher, type RoutedMessage } from "./publish-routed.js";
import { watchRegionLoad, type RegionLoad } from "./region-load.js";
import { RegionRouter } from "./router.js";
import { needsRouting } from "./task-route.js";
import { watchWorkerDirectory } from "./worker-directory.js";
import type { ContextCarry } from "../context/context-carry.js";

export interface RoutingOptions {
  topology: RegionTopology | undefined;
  residency: ResidencyRules;
  /** Queued tasks by which the preferred region may exceed the least busy one before a task moves. Default 50. */
  busyMargin?: number;
  /** How often the pools' backlogs are read. Default 2000 ms. */
  loadIntervalMs?: number;
  /** Lanes an operator paused (control/lane-pauses.ts): routing moves no task into them. */
  lanePaused?: (region: string, handler: string) => boolean;
  /** Copies a later attempt's checkpoint into the region the task goes to (context/checkpoint-carry.ts). */
  carryCheckpoint?: CheckpointCarry;
  /** Copies an offloaded context into the bucket of the region a task is moved to (context/context-carry.ts). */
  carryContext?: ContextCarry;
}

export interface Routing {
  routes(route: RoutedMessage["route"] | undefined): boolean;
  publish(m: RoutedMessage): Promise<void>;
  /** Absent on a single server without residency rules (nothing to balance). */
  load: RegionLoad | undefined;
  /** Whether a live worker serves `handler` in `region` (the worker directory). */
  serves(region: string, handler: string): boolean;
  /** The regions where a live worker serves `handler`. */
  regionsServing(handler: string): string[];
  stop(): Promise<void>;
}

/**
 * Assembles region routing for the relay: the worker directory (KV fm_workers), the pools'
 * backlogs (on a multi-region hub, or with residency rules to choose among), the router and the
 * publisher that fails over.
 */
export async function startRouting(nc: NatsConnection, db: Db, names: Names, log: Logger, o: RoutingOptions): Promise<Routing> {
  const multiRegion = o.topology !== undefined && o.topology.leafRegions.length > 0;
  const directory = await watchWorkerDirectory(await new Kvm(nc).open(names.buckets.workers), log);
  log.info({ expiredBy: directory.markers ? "server delete markers" : "entry age" }, "watching the worker registry");
  const balances = multiRegion || Object.keys(o.residency).length > 0;
  const load = balances ? watchRegionLoad(nc, names, o.topology, log, o.loadIntervalMs ?? 2000) : undefined;
  const router = new RegionRouter({ residency: o.residency, topology: o.topology, load, directory, busyMargin: o.busyMargin ?? 50, ...(o.lanePaused ? { lanePaused: o.lanePaused } : {}) });
  const publish = createRoutedPublisher({
    js: jetstream(nc),
    db,
    router,
    subjects: names.subjects,
    log,
    ...(o.carryCheckpoint ? { carryCheckpoint: o.carryCheckpoint } : {}),
    ...(o.carryContext ? { carryContext: o.carryContext } : {}),
  });
  return {
    routes: (route) => needsRouting(route, multiRegion),
    publish,
    load,
    serves: (region, handler) => directory.serves(region, handler),
    regionsServing: (handler) => directory.regionsServing(handler),
    async stop() {
      await load?.stop();
      await directory.stop();
    },
  };
}
