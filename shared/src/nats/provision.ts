import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  jetstreamManager,
  type ConsumerConfig,
  type ConsumerInfo,
  type JetStreamManager,
  type StreamConfig,
} from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { nanos, type NatsConnection } from "@nats-io/nats-core";
import { Objm } from "@nats-io/obj";
import type { Names } from "../protocol/names.js";
import { maxDeliveriesAdvisorySubject } from "../protocol/subjects.js";
import type { Priority } from "../protocol/tokens.js";
import { domainApiPrefix, type RegionTopology } from "../regions/topology.js";
import { serverAtLeast, serverVersionOf, SOURCE_POSITIONS_PERSISTED, SOURCE_STARTS_AT_LAST_TIME, type ServerVersion } from "./server-version.js";

const SECOND = 1000;
const DAY = 24 * 3600 * SECOND;
export const DEFAULT_CHECKPOINT_TTL_MS = 7 * DAY;

export interface ProvisionOptions {
  /** The task consumers' ack_wait: how long a task may go without an in-progress ack. */
  heartbeatTimeoutMs: number;
  /** Stream and bucket replicas (3 on a clustered hub). */
  replicas?: number;
  /** Deliveries of one task attempt before it counts as dead (a crashing worker, a poison task). */
  taskMaxDeliver?: number;
  /** Most tasks the task stream holds (max_msgs); a publish beyond it is refused, nothing is dropped. Default: no limit. */
  taskQueueLimit?: number;
  /**
   * How long a step's checkpoint is kept after its last save (the fm_checkpoints TTL). Given, an
   * existing bucket is changed to it; absent, a new bucket gets 7 days and an existing one keeps its own.
   */
  checkpointTtlMs?: number;
  /**
   * A hub with leaf regions: the hub's task stream takes only the hub's regions, and its results
   * stream sources each leaf region's results stream (see provisionRegion). Absent: one server
   * holds every region's queue.
   */
  topology?: RegionTopology;
}

export interface TaskPoolOptions {
  ackWaitMs: number;
  maxDeliver?: number;
}

/**
 * Creates or updates everything the mesh needs on a server: streams, the engine's durable
 * consumers, KV and Object Store buckets. Safe to run any number of times, concurrently.
 */
export async function provisionMesh(nc: NatsConnection, names: Names, options: ProvisionOptions): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const replicas = options.replicas ?? 1;
  const s = names.subjects;
  const version = serverVersionOf(nc);
  const base: Partial<StreamConfig> = {
    storage: StorageType.File,
    num_replicas: replicas,
    duplicate_window: nanos(120 * SECOND),
    // No max_msg_size: a stream silently drops a core-published message over its limit, while
    // the engine rejects an oversize one with a recorded reason. The server's max_payload is
    // the hard cap, and a publisher over it gets an error at once.
  };
  const workQueue = { ...base, retention: RetentionPolicy.Workqueue, max_age: nanos(14 * DAY) };
  await ensureStream(jsm, { ...workQueue, name: names.streams.flows, subjects: [s.flowStartAll] });
  await ensureStream(jsm, {
    ...workQueue,
    name: names.streams.tasks,
    subjects: options.topology ? options.topology.hubRegions.map((r) => s.tasksOfRegion(r)) : [s.tasksAll],
    // Full means full: the engine's outbox keeps what did not fit and publishes it once there is room.
    max_msgs: options.taskQueueLimit ?? -1,
    discard: DiscardPolicy.New,
  });
  await ensureStream(jsm, { ...workQueue, name: names.streams.results, ...resultsSubjectsAndSources(names, options.topology, version) });
  await ensureStream(jsm, {
    ...base,
    name: names.streams.events,
    subjects: [s.eventsAll],
    retention: RetentionPolicy.Limits,
    max_age: nanos(7 * DAY),
    discard: DiscardPolicy.Old,
  });
  await ensureStream(jsm, {
    ...base,
    name: names.streams.dlq,
    subjects: [s.dlqAll],
    retention: RetentionPolicy.Limits,
    max_age: nanos(30 * DAY),
  });

  // The server publishes a task consumer's MAX_DELIVERIES advisory once, on core NATS; a stream
  // keeps it until an engine replica has dead-lettered the task. A leaf domain's advisories are
  // kept in that domain and sourced in (see provisionRegion).
  await ensureStream(jsm, { ...workQueue, name: names.streams.advisories, ...advisoriesSubjectsAndSources(names, options.topology, version) });

  const engineConsumer: Partial<ConsumerConfig> = {
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    // What a SIGKILLed engine replica held is redelivered to the others after this; a batch
    // takes well under a second, so 10 s is slack, not a limit anyone meets.
    ack_wait: nanos(10 * SECOND),
    max_ack_pending: 20_000,
    // A message that keeps failing is terminated and recorded by the engine long before this.
    max_deliver: 50,
  };
  await ensureConsumer(jsm, names.streams.flows, {
    ...engineConsumer,
    durable_name: names.consumers.intake,
    filter_subject: s.flowStartAll,
  });
  await ensureConsumer(jsm, names.streams.results, {
    ...engineConsumer,
    durable_name: names.consumers.results,
    filter_subject: s.resultsAll,
  });
  // An advisory about a leaf domain waits as long as that domain's link is down (the engine naks
  // it, never terminates it): no delivery limit here. Poison is still terminated by the engine.
  await ensureConsumer(jsm, names.streams.advisories, { ...engineConsumer, max_deliver: -1, durable_name: names.consumers.deadTasks });
  // From the events published after the mesh was first provisioned: a new engine must not
  // replay a week of old events into today's waits.
  await ensureConsumer(jsm, names.streams.events, {
    ...engineConsumer,
    deliver_policy: DeliverPolicy.New,
    durable_name: names.consumers.events,
    filter_subject: s.eventsAll,
  });

  const kvm = new Kvm(nc);
  await ensureWorkersBucket(jsm, kvm, names.buckets.workers, { ttlMs: WORKER_ENTRY_TTL_MS, replicas });
  await ensureKv(kvm, names.buckets.progress, { history: 1, ttl: 7 * DAY, replicas });
  await ensureKv(kvm, names.buckets.context, { history: 1, replicas });
  await ensureKv(kvm, names.buckets.checkpoints, { history: 1, ttl: options.checkpointTtlMs ?? DEFAULT_CHECKPOINT_TTL_MS, replicas });
  if (options.checkpointTtlMs !== undefined) await ensureKvTtl(jsm, names.buckets.checkpoints, options.checkpointTtlMs);
  const objm = new Objm(nc);
  await onceMoreIfRaced(() => objm.create(names.buckets.blobs, { replicas, storage: StorageType.File }));
  // Each known region's blob bucket, at the hub, so that its workers can store a large checkpoint
  // before the engine ever sent the region a large context (a region not in the topology gets its
  // bucket from the engine when it first does, or from its workers where they may make one).
  const regions = options.topology ? [...options.topology.hubRegions, ...options.topology.leafRegions.map((l) => l.region)] : [];
  for (const region of regions) await onceMoreIfRaced(() => objm.create(names.regionBuckets.blobs(region), { replicas, storage: StorageType.File }));
  await onceMoreIfRaced(() => objm.create(names.buckets.handlers, { replicas, storage: StorageType.File }));
}

/**
 * The hub's results stream: everything on one server; with leaf regions, the hub regions' own
 * results subjects plus a source per leaf region. Sourcing is done by the hub server itself and
 * resumes where it stopped when a cut link returns, so a region's results arrive late, never lost.
 * On 2.15+ each source starts at the region stream's first message (see leafSource).
 */
function resultsSubjectsAndSources(names: Names, topology: RegionTopology | undefined, version: ServerVersion | undefined): Partial<StreamConfig> {
  if (!topology) return { subjects: [names.subjects.resultsAll] };
  return {
    subjects: topology.hubRegions.map((r) => names.subjects.results(r)),
    sources: topology.leafRegions.map(({ region, domain }) =>
      leafSource(names.regionStreams.results(region), domain, serverAtLeast(version, SOURCE_POSITIONS_PERSISTED)),
    ),
  };
}

/**
 * The hub's advisories stream: the advisories of the task stream on the hub's own server, plus a
 * source per leaf domain's advisories stream. Sourced messages keep their subject (the same one:
 * the advisory names the stream and consumer, not the domain); the advisory's `domain` field says
 * which domain's task stream it is about. The leaf configs keep the live advisory from crossing
 * the link (deny_exports), so each arrives once, by the source, which resumes where it stopped
 * when a cut link returns. On 2.10.16+ each source starts at the domain stream's first message
 * (see leafSource): otherwise a leaf's advisory could be skipped for good.
 */
function advisoriesSubjectsAndSources(names: Names, topology: RegionTopology | undefined, version: ServerVersion | undefined): Partial<StreamConfig> {
  const subjects = [maxDeliveriesAdvisorySubject(names.streams.tasks)];
  if (!topology) return { subjects };
  const domains = [...new Set(topology.leafRegions.map((l) => l.domain))];
  return {
    subjects,
    sources: domains.map((domain) => leafSource(names.domainStreams.advisories(domain), domain, serverAtLeast(version, SOURCE_STARTS_AT_LAST_TIME))),
  };
}

/**
 * A hub work-queue stream's source of a stream in a leaf domain. With `fromFirst`, the source has
 * an explicit start, the upstream stream's first message (`opt_start_seq: 1`): nats-server 2.10.16+
 * starts a source that has no position yet (it never delivered: the leaf stream did not exist yet
 * when the hub stream was made, or the link was cut before its first message) at the hub stream's
 * last message time as soon as the hub stream's first sequence is above 1 — in a work-queue stream,
 * once one of its own messages was acked. A leaf message stored before that (an advisory raised in
 * the leaf a moment before the hub's own, or while the link was cut) was then never sourced. A
 * source that has delivered resumes at its next sequence either way. Written in the server's field
 * order (name, opt_start_seq, external), so that an unchanged stream compares equal.
 */
function leafSource(name: string, domain: string, fromFirst: boolean): NonNullable<StreamConfig["sources"]>[number] {
  return { name, ...(fromFirst ? { opt_start_seq: 1 } : {}), external: { api: domainApiPrefix(domain), deliver: "" } };
}

export interface RegionProvisionOptions {
  heartbeatTimeoutMs: number;
  replicas?: number;
  taskQueueLimit?: number;
}

/**
 * A leaf region's own streams, created in its domain through the leaf link: the region's task
 * queue (same name as the hub's, so workers open their pools the same way everywhere), its
 * results buffer, and the domain's MAX_DELIVERIES advisories. Results and advisories are kept by
 * age, not by work-queue acks: the hub's sources read them without acknowledging, and a buffer
 * that outlives a long outage is what keeps them.
 */
export async function provisionRegion(nc: NatsConnection, names: Names, region: string, domain: string, options: RegionProvisionOptions): Promise<void> {
  const jsm = await jetstreamManager(nc, { domain, timeout: 5000 });
  const base: Partial<StreamConfig> = { storage: StorageType.File, num_replicas: options.replicas ?? 1, duplicate_window: nanos(120 * SECOND) };
  await ensureStream(jsm, {
    ...base,
    name: names.streams.tasks,
    subjects: [names.subjects.tasksOfRegion(region)],
    retention: RetentionPolicy.Workqueue,
    max_age: nanos(14 * DAY),
    max_msgs: options.taskQueueLimit ?? -1,
    discard: DiscardPolicy.New,
  });
  await ensureStream(jsm, {
    ...base,
    name: names.regionStreams.results(region),
    subjects: [names.subjects.results(region)],
    retention: RetentionPolicy.Limits,
    max_age: nanos(14 * DAY),
  });
  await ensureStream(jsm, {
    ...base,
    name: names.domainStreams.advisories(domain),
    subjects: [maxDeliveriesAdvisorySubject(names.streams.tasks)],
    retention: RetentionPolicy.Limits,
    max_age: nanos(14 * DAY),
  });
}

/**
 * The durable pull consumer shared by every worker of one (region, handler) pool, for one
 * priority; with `capabilities`, of the handler's capability-qualified pool for exactly that set.
 * Every filter is a literal subject (no wildcard), so no two pool consumers overlap — a
 * work-queue stream refuses overlapping filters.
 */
export async function ensureTaskPool(
  jsm: JetStreamManager,
  names: Names,
  region: string,
  handler: string,
  priority: Priority,
  options: TaskPoolOptions,
  capabilities: readonly string[] = [],
): Promise<ConsumerInfo> {
  // A work-queue stream refuses consumers whose filters overlap: the one-per-pool consumer of
  // earlier versions (all priorities) has to go first. Its unacked tasks stay in the stream.
  await jsm.consumers.delete(names.streams.tasks, names.consumers.legacyTaskPool(region, handler)).catch(notFoundAs(false));
  return ensureConsumer(jsm, names.streams.tasks, {
    durable_name: names.consumers.taskPool(region, handler, priority, capabilities),
    filter_subject: names.subjects.task(region, handler, priority, capabilities),
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(options.ackWaitMs),
    max_deliver: options.maxDeliver ?? 5,
    max_ack_pending: 10_000,
  });
}

export async function ensureStream(jsm: JetStreamManager, config: Partial<StreamConfig> & { name: string }): Promise<void> {
  const placementDeadline = Date.now() + PLACEMENT_WAIT_MS;
  for (let attempt = 0; ; attempt++) {
    try {
      const info = await jsm.streams.info(config.name).catch(notFoundAs(undefined));
      if (!info) await jsm.streams.add(config);
      else if (differs(info.config, config)) await jsm.streams.update(config.name, { ...info.config, ...config });
      return;
    } catch (err) {
      // Another process created it between our info and add: look again once.
      if (attempt === 0 && isAlreadyInUse(err)) continue;
      // A cluster that has just elected its meta leader may not know all its peers yet: an R3
      // stream has nowhere to go for a moment. Wait for them, for a while.
      if (isNoPlacement(err) && Date.now() < placementDeadline) {
        await new Promise((resolve) => setTimeout(resolve, 250));
        continue;
      }
      throw err;
    }
  }
}

/** How long provisioning waits for a forming cluster's peers before giving up on placing a stream. */
const PLACEMENT_WAIT_MS = 30_000;

function isNoPlacement(err: unknown): boolean {
  return err instanceof JetStreamApiError && /no suitable peers for placement/i.test(err.message);
}

export async function ensureConsumer(
  jsm: JetStreamManager,
  stream: string,
  config: Partial<ConsumerConfig> & { durable_name: string },
): Promise<ConsumerInfo> {
  for (let attempt = 0; ; attempt++) {
    try {
      const info = await jsm.consumers.info(stream, config.durable_name).catch(notFoundAs(undefined));
      if (!info) return await jsm.consumers.add(stream, config);
      if (!differs(info.config, config)) return info;
      // deliver_policy and filter are fixed at creation; the rest may be updated.
      const { deliver_policy: _fixed, ...mutable } = config;
      return await jsm.consumers.update(stream, config.durable_name, mutable);
    } catch (err) {
      if (attempt === 0 && isAlreadyInUse(err)) continue;
      throw err;
    }
  }
}

async function ensureKv(kvm: Kvm, name: string, options: { history: number; ttl?: number; replicas: number }): Promise<void> {
  await onceMoreIfRaced(() => kvm.create(name, { history: options.history, replicas: options.replicas, ...(options.ttl ? { ttl: options.ttl } : {}) }));
}

/**
 * Engines starting together race to make the same bucket; nats-server 2.9 may answer the loser
 * "subjects overlap with an existing stream" (seen in CI with three engine replicas). The bucket
 * exists then, and making it again (same config) finds it.
 */
async function onceMoreIfRaced<T>(make: () => Promise<T>): Promise<T> {
  try {
    return await make();
  } catch (err) {
    if (err instanceof JetStreamApiError && /subjects overlap/i.test(err.message)) return make();
    throw err;
  }
}

/** A worker's registry entry not refreshed for this long belongs to a dead worker (the workers bucket's TTL). */
export const WORKER_ENTRY_TTL_MS = 30 * SECOND;
/**
 * How long the delete marker of an expired worker entry stays: watchers that were away (a cut
 * link, a restart) still see it when they catch up. One small message per dead worker.
 */
export const WORKER_MARKER_TTL_MS = 3600 * SECOND;

/**
 * The workers bucket (KV fm_workers). Entries expire by the bucket's TTL; on JetStream API level 1
 * (nats-server 2.11) and later the bucket also leaves a delete marker when an entry expires
 * (`subject_delete_marker_ttl`), so a watcher sees a dead worker go when the server expires its
 * entry instead of judging entries by age against its own clock. 2.9 and 2.10 expire entries
 * silently. An existing bucket gets markers on a server that has them (the setting cannot be
 * taken back). Answers whether the bucket leaves markers.
 */
export async function ensureWorkersBucket(jsm: JetStreamManager, kvm: Kvm, bucket: string, o: { ttlMs: number; replicas: number }): Promise<boolean> {
  const markers = await jetStreamApiLevel(jsm) >= 1;
  await kvm.create(bucket, { history: 1, ttl: o.ttlMs, replicas: o.replicas, ...(markers ? { markerTTL: WORKER_MARKER_TTL_MS } : {}) });
  const stream = `KV_${bucket}`;
  const info = await jsm.streams.info(stream);
  if (!markers || info.config.subject_delete_marker_ttl === nanos(WORKER_MARKER_TTL_MS)) return markers && info.config.allow_msg_ttl === true;
  const updated = await jsm.streams.update(stream, { ...info.config, allow_msg_ttl: true, subject_delete_marker_ttl: nanos(WORKER_MARKER_TTL_MS) });
  return updated.config.allow_msg_ttl === true;
}

/** The JetStream API level the server reports (ADR-44): 1 is nats-server 2.11; 2.9 and 2.10 report none (0). */
async function jetStreamApiLevel(jsm: JetStreamManager): Promise<number> {
  return (await jsm.getAccountInfo()).api.level ?? 0;
}

/** kvm.create() leaves an existing bucket's TTL as it is; the bucket's stream says what it is and takes a new one. */
async function ensureKvTtl(jsm: JetStreamManager, bucket: string, ttlMs: number): Promise<void> {
  const stream = `KV_${bucket}`;
  const info = await jsm.streams.info(stream);
  if (info.config.max_age !== nanos(ttlMs)) await jsm.streams.update(stream, { ...info.config, max_age: nanos(ttlMs) });
}

function differs(current: object, wanted: object): boolean {
  const cur = current as Record<string, unknown>;
  return Object.entries(wanted).some(([key, value]) => JSON.stringify(cur[key]) !== JSON.stringify(value));
}

function notFoundAs<T>(value: T) {
  return (err: unknown): T => {
    if (
      err instanceof JetStreamApiError &&
      (err.code === JetStreamApiCodes.StreamNotFound || err.code === JetStreamApiCodes.ConsumerNotFound)
    ) {
      return value;
    }
    throw err;
  };
}

function isAlreadyInUse(err: unknown): boolean {
  return err instanceof JetStreamApiError && err.status === 400 && /already in use|already exists/i.test(err.message);
}
