import { JS_DOMAIN_PATTERN } from "../regions/topology.js";
import { createSubjects, DEFAULT_PREFIX, type Subjects } from "./subjects.js";
import { parsePoolToken, poolToken, PRIORITIES, REGION_PATTERN, type Priority } from "./tokens.js";

/**
 * Durable consumer names: tokens joined by `_`, plus `~` inside a capability-qualified pool's
 * handler token. 255 is nats-server's limit on a consumer name (and a file name's, in the store).
 */
export const CONSUMER_NAME_PATTERN = /^[A-Za-z0-9_~-]{1,255}$/;

/**
 * Stream, consumer, bucket, service and header names, all derived from the subject prefix so
 * that two meshes (or two tests) on one server never collide. JetStream config keeps the
 * server's snake_case elsewhere; names live here.
 */
export const HEADERS = {
  /** JetStream de-duplication id (the server's own header name). */
  msgId: "Nats-Msg-Id",
  /** W3C trace context carried across processes. */
  traceparent: "traceparent",
  /** Why a message was rejected (on replies and DLQ entries). */
  errorCode: "Fm-Error-Code",
} as const;

/**
 * Object names inside the blob bucket (`fm_blobs`). Everything of one execution's context lives
 * under `context/<executionId>/`, so a sweep can remove it by prefix once the execution is over;
 * the rest of the name is the sha256 of the content (see shared/src/context/split-context.ts).
 */
export const BLOB_NAMES = {
  checkpoint: (executionId: string, stepId: string) => `checkpoints/${executionId}.${stepId}`,
  contextPrefix: (executionId: string) => `context/${executionId}/`,
  context: (executionId: string, sha256Hex: string) => `context/${executionId}/${sha256Hex}`,
} as const;

/**
 * Keys of the per-step KV buckets (`fm_checkpoints`, `fm_progress`): `<region>.<executionId>.<slot>`,
 * where region is the region of the worker that ran the step there and slot is the stepId (a map
 * item's checkpoint: `<stepId>.item-<run>-<index>`). The region comes first so that a region's
 * workers can be granted `$KV.fm_checkpoints.<region>.>` and nothing else: a worker never reads
 * or writes another region's steps. A step's later attempt that runs elsewhere gets its
 * checkpoint from the engine, which carries it over when it publishes the attempt.
 */
export const STEP_KEYS = {
  key: (region: string, executionId: string, slot: string) => `${region}.${executionId}.${slot}`,
  /** A step's checkpoint slot: its stepId, or a map item's own (the step's items run side by side). */
  checkpointSlot: (stepId: string, item?: { run: number; index: number }) => (item ? `${stepId}.item-${item.run}-${item.index}` : stepId),
  /** A key filter for every step of one execution, in every region. */
  ofExecution: (executionId: string) => `*.${executionId}.*`,
} as const;

/**
 * Keys of the worker registry (`fm_workers`): `<region>.<workerId>`. The region comes first so
 * that a region's workers can be granted `$KV.fm_workers.<region>.>` only, and an entry counts
 * only under the key of the region it names (`holds`): a worker cannot announce workers in, nor
 * remove workers of, another region (which would steer routing).
 */
export const WORKER_KEYS = {
  key: (region: string, workerId: string) => `${region}.${workerId}`,
  holds: (key: string, entry: { region: string; workerId: string }) => key === `${entry.region}.${entry.workerId}`,
} as const;

export type Names = ReturnType<typeof createNames>;

/** A task pool consumer's parts: `capabilities` is [] for a handler's plain pool. */
export interface TaskPoolName {
  region: string;
  handler: string;
  priority: Priority;
  capabilities: string[];
}

/** `pool_<region>_<handler>[~<cap>…]_<priority>` → its parts (regions have no `_`, priorities are the last token). */
export function parseTaskPoolName(name: string): TaskPoolName | undefined {
  const m = /^pool_([a-z0-9][a-z0-9-]*)_(.+)_(high|normal|low)$/.exec(name);
  const pool = m ? parsePoolToken(m[2]!) : undefined;
  return m && pool && REGION_PATTERN.test(m[1]!) ? { region: m[1]!, handler: pool.handler, priority: m[3] as Priority, capabilities: pool.capabilities } : undefined;
}

export function createNames(prefix: string = DEFAULT_PREFIX) {
  const subjects: Subjects = createSubjects(prefix);
  const upper = prefix.toUpperCase().replace(/-/g, "_");
  const lower = prefix.toLowerCase().replace(/-/g, "_");
  const durable = (...parts: string[]) => {
    const name = parts.join("_");
    if (!CONSUMER_NAME_PATTERN.test(name)) throw new Error(`invalid consumer name ${name} (letters, digits, '-', '_', '~'; at most 255)`);
    return name;
  };
  return {
    prefix,
    subjects,
    streams: {
      flows: `${upper}_FLOWS`,
      tasks: `${upper}_TASKS`,
      results: `${upper}_RESULTS`,
      events: `${upper}_EVENTS`,
      dlq: `${upper}_DLQ`,
      /** The task consumers' MAX_DELIVERIES advisories, kept so that none is missed while no engine runs. */
      advisories: `${upper}_ADVISORIES`,
    },
    /** Streams that exist once per leaf region, in the region's own JetStream domain. */
    regionStreams: {
      /**
       * A leaf region's results, stored in the region's own domain (so a cut link loses none)
       * and sourced into the hub's results stream.
       */
      results: (region: string) => {
        if (!REGION_PATTERN.test(region)) throw new Error(`invalid region ${JSON.stringify(region)}`);
        return `${upper}_RESULTS_${region.toUpperCase().replace(/-/g, "_")}`;
      },
    },
    /** Streams that exist once per leaf JetStream domain, in that domain. */
    domainStreams: {
      /**
       * The MAX_DELIVERIES advisories of a leaf domain's task stream, kept in the domain (so one
       * raised while the link is cut is not lost) and sourced into the hub's advisories stream.
       * Upper-cased with `-` → `_`, like the region streams: domains `eu-west-1` and `EU_WEST_1`
       * would share a name, so a mesh must not use both.
       */
      advisories: (domain: string) => {
        if (!JS_DOMAIN_PATTERN.test(domain)) throw new Error(`invalid JetStream domain ${JSON.stringify(domain)}`);
        return `${upper}_ADVISORIES_${domain.toUpperCase().replace(/-/g, "_")}`;
      },
    },
    consumers: {
      /** Shared by every engine replica: each flow-start is taken by one of them. */
      intake: "engine_intake",
      results: "engine_results",
      /** Engine replicas resume steps waiting for events (`resumeOn`). */
      events: "engine_events",
      /** Engine replicas dead-letter tasks whose deliveries ran out (from the advisories stream). */
      deadTasks: "engine_dead_tasks",
      /**
       * One durable consumer per (region, handler, priority), shared by that pool's workers: a
       * worker pulls from the high one first, so high tasks overtake a normal backlog. With
       * `capabilities`, the consumer of the capability-qualified pool of the workers that offer
       * exactly that set: `pool_<region>_<handler>~<cap>~<cap>_<priority>`.
       */
      taskPool: (region: string, handler: string, priority: Priority, capabilities: readonly string[] = []) => {
        // Regions have no '_', so the first '_' after "pool_" always ends the region.
        if (!REGION_PATTERN.test(region)) throw new Error(`invalid region ${JSON.stringify(region)}`);
        if (!PRIORITIES.includes(priority)) throw new Error(`invalid priority ${JSON.stringify(priority)}`);
        const pool = poolToken(handler, capabilities);
        if (pool === undefined) throw new Error(`invalid handler ${JSON.stringify(handler)} or capabilities ${JSON.stringify(capabilities)}`);
        return durable("pool", region, pool, priority);
      },
      /** `pool_<region>_<handler>[~<cap>…]_<priority>` → its parts; undefined for any other consumer name. */
      parseTaskPool: (name: string) => parseTaskPoolName(name),
      /** The single consumer per (region, handler) of versions before priorities; removed when a worker opens the pool. */
      legacyTaskPool: (region: string, handler: string) => durable("pool", region, handler),
    },
    buckets: {
      workers: `${lower}_workers`,
      progress: `${lower}_progress`,
      context: `${lower}_context`,
      checkpoints: `${lower}_checkpoints`,
      /** The mesh's shared blob bucket: what the engine offloaded before blobs were kept per region (read only). */
      blobs: `${lower}_blobs`,
      /** Object Store of published sandboxed handler bundles (`<type>@<version>/manifest.json`, `.../handler.js`). */
      handlers: `${lower}_handlers`,
    },
    /** Buckets that exist once per region, at the hub. */
    regionBuckets: {
      /**
       * One region's blob bucket (`fm_blobs_<region>`): the contexts the engine offloads for the
       * region's tasks and its workers' large checkpoints. Per region so that a region's workers
       * can be granted `$O.fm_blobs_<region>.>` only (an Object Store's chunk subjects do not
       * name the object, so one bucket's objects cannot be told apart by permissions).
       */
      blobs: (region: string) => {
        if (!REGION_PATTERN.test(region)) throw new Error(`invalid region ${JSON.stringify(region)}`);
        return `${lower}_blobs_${region}`;
      },
    },
    /** Name under which the engine's fm.api endpoints appear in `nats micro ls`. */
    serviceName: lower === DEFAULT_PREFIX ? "flowmonkey" : `flowmonkey_${lower}`,
  };
}
