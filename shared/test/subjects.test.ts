import { describe, expect, it } from "vitest";
import {
  API_ENDPOINTS,
  createSubjects,
  DEFAULT_PREFIX,
  EXECUTION_EVENT_TYPES,
  maxDeliveriesAdvisorySubject,
  nakAdvisorySubject,
  SubjectError,
} from "../src/protocol/subjects.js";
import { createNames, HEADERS } from "../src/protocol/names.js";
import { PRIORITIES } from "../src/protocol/tokens.js";

const PREFIXES = [DEFAULT_PREFIX, "acme_prod", "t1a2b3c4d", "mesh_2"] as const;

/** Values that must never become a subject token: they would change what the subject means. */
const BAD_TOKENS = ["", ".", "a.b", "*", ">", "a*", "a>", " ", "a b", "a\tb", "a\nb", "x".repeat(129)];

describe.each(PREFIXES)("subjects with prefix %j", (p) => {
  const s = createSubjects(p);

  it("keeps the prefix", () => {
    expect(s.prefix).toBe(p);
  });

  it("flow starts: build and parse round-trip", () => {
    const subject = s.flowStart("order-flow");
    expect(subject).toBe(`${p}.flows.start.order-flow`);
    expect(s.parseFlowStart(subject)).toEqual({ flowId: "order-flow" });
    expect(s.flowStartAll).toBe(`${p}.flows.start.>`);
  });

  it("api endpoints: every endpoint lives under <prefix>.api", () => {
    for (const endpoint of Object.values(API_ENDPOINTS)) {
      expect(s.api(endpoint)).toBe(`${p}.api.${endpoint}`);
    }
    expect(s.apiAll).toBe(`${p}.api.>`);
  });

  it("api flow start: build and parse round-trip", () => {
    const subject = s.apiFlowStart("hello_world");
    expect(subject).toBe(`${p}.api.flows.start.hello_world`);
    expect(s.parseApiFlowStart(subject)).toEqual({ flowId: "hello_world" });
    expect(s.apiFlowStartAll).toBe(`${p}.api.flows.start.*`);
    // The stream-captured start and the request/reply start are different subjects.
    expect(s.parseFlowStart(subject)).toBeUndefined();
    expect(s.parseApiFlowStart(s.flowStart("hello_world"))).toBeUndefined();
  });

  it.each(PRIORITIES)("tasks at priority %s: build and parse round-trip", (priority) => {
    const subject = s.task("eu-west-1", "http-request", priority);
    expect(subject).toBe(`${p}.tasks.eu-west-1.http-request.${priority}`);
    expect(s.parseTask(subject)).toEqual({ region: "eu-west-1", handler: "http-request", priority, capabilities: [] });
  });

  it.each(PRIORITIES)("capability-qualified pool tasks at priority %s: build and parse round-trip", (priority) => {
    const subject = s.task("eu-west-1", "video-encode", priority, ["gpu", "fp16", "gpu"]);
    // The full set, sorted and unique, joined with '~': one name per capability set.
    expect(subject).toBe(`${p}.tasks.eu-west-1.video-encode~fp16~gpu.${priority}`);
    expect(s.parseTask(subject)).toEqual({ region: "eu-west-1", handler: "video-encode", priority, capabilities: ["fp16", "gpu"] });
    expect(s.task("eu-west-1", "video-encode", priority, [])).toBe(`${p}.tasks.eu-west-1.video-encode.${priority}`);
    expect(s.taskPool("eu-west-1", "video-encode", ["gpu"])).toBe(`${p}.tasks.eu-west-1.video-encode~gpu.*`);
  });

  it("a pool token that is not the canonical form is not a task subject", () => {
    for (const pool of ["echo~gpu~fp16", "echo~gpu~gpu", "echo~", "~gpu", "echo~~gpu", "echo~g.p"]) {
      expect(s.parseTask(`${p}.tasks.eu.${pool}.normal`), pool).toBeUndefined();
    }
  });

  it("task wildcards", () => {
    expect(s.taskPool("eu-west-1", "echo")).toBe(`${p}.tasks.eu-west-1.echo.*`);
    expect(s.tasksOfRegion("eu-west-1")).toBe(`${p}.tasks.eu-west-1.>`);
    expect(s.tasksAll).toBe(`${p}.tasks.>`);
  });

  it("results: build and parse round-trip", () => {
    const subject = s.results("us-east-1");
    expect(subject).toBe(`${p}.results.us-east-1`);
    expect(s.parseResults(subject)).toEqual({ region: "us-east-1" });
    expect(s.resultsAll).toBe(`${p}.results.>`);
  });

  it("progress: build and parse round-trip", () => {
    const exec = "0b6f6f2c-3a8e-4a4e-9d83-2b0f5f7c1a10";
    const subject = s.progress(exec, "charge");
    expect(subject).toBe(`${p}.progress.${exec}.charge`);
    expect(s.parseProgress(subject)).toEqual({ executionId: exec, stepId: "charge" });
    expect(s.progressOfExecution(exec)).toEqual([`${p}.progress.${exec}.*`, `${p}.progress.*.${exec}.*`]);
    expect(s.progressAll).toBe(`${p}.progress.>`);
  });

  it("a region's worker's progress: build and parse round-trip, never mistaken for the engine's", () => {
    const subject = s.regionProgress("eu-west-1", "exec-1", "charge");
    expect(subject).toBe(`${p}.progress.~eu-west-1.exec-1.charge`);
    expect(s.parseProgress(subject)).toEqual({ executionId: "exec-1", stepId: "charge", region: "eu-west-1" });
    expect(() => s.regionProgress("EU", "exec-1", "charge")).toThrow(/invalid region/);
    expect(s.parseProgress(`${p}.progress.eu-west-1.exec-1.charge`)).toBeUndefined();
    expect(s.parseProgress(`${p}.progress.~.exec-1.charge`)).toBeUndefined();
    expect(s.parseProgress(`${p}.progress.~eu-west-1.charge`)).toBeUndefined();
  });

  it.each(EXECUTION_EVENT_TYPES)("execution event %s: build and parse round-trip", (event) => {
    const subject = s.exec("order-flow", "exec-1", event);
    expect(subject).toBe(`${p}.exec.order-flow.exec-1.${event}`);
    expect(s.parseExec(subject)).toEqual({ flowId: "order-flow", executionId: "exec-1", event });
  });

  it("execution event wildcards", () => {
    expect(s.execOfExecution("exec-1")).toBe(`${p}.exec.*.exec-1.>`);
    expect(s.execOfFlow("order-flow")).toBe(`${p}.exec.order-flow.>`);
    expect(s.execAll).toBe(`${p}.exec.>`);
  });

  it.each(["order", "order.paid", "a.b.c.d.e.f.g.h"])("custom event %j: build and parse round-trip", (name) => {
    const subject = s.event(name);
    expect(subject).toBe(`${p}.events.${name}`);
    expect(s.parseEvent(subject)).toEqual({ name });
    expect(s.eventsAll).toBe(`${p}.events.>`);
  });

  it.each(["order", "order.paid", "a.b.c.d.e.f.g.h"])("a region's event %j: build and parse round-trip", (name) => {
    const subject = s.regionEvent("eu-west-1", name);
    expect(subject).toBe(`${p}.events.~eu-west-1.${name}`);
    expect(s.parseEvent(subject)).toEqual({ name, region: "eu-west-1" });
  });

  it("a region's event needs a valid region and name; '~' never starts a trusted event's name", () => {
    expect(() => s.regionEvent("EU", "order.paid")).toThrow(/invalid region/);
    expect(() => s.regionEvent("eu-west-1", "~us-east-1.order")).toThrow(/invalid event name/);
    expect(() => s.event("~eu-west-1.order.paid")).toThrow(/invalid event name/);
    expect(s.parseEvent(`${p}.events.~.order`)).toBeUndefined();
    expect(s.parseEvent(`${p}.events.~EU.order`)).toBeUndefined();
    expect(s.parseEvent(`${p}.events.~eu-west-1`)).toBeUndefined();
    expect(s.parseEvent(`${p}.events.~eu-west-1.~us-east-1.order`)).toBeUndefined();
    expect(s.parseEvent(`${p}.events.~eu-west-1.a.b.c.d.e.f.g.h.i`)).toBeUndefined();
  });

  it("dead letters", () => {
    expect(s.dlq("eu-west-1", "video-encode")).toBe(`${p}.dlq.eu-west-1.video-encode`);
    expect(s.dlqAll).toBe(`${p}.dlq.>`);
  });

  it("the server's MAX_DELIVERIES advisory for a task stream (a system subject, not under the prefix)", () => {
    expect(maxDeliveriesAdvisorySubject("FM_TASKS")).toBe("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.FM_TASKS.*");
    expect(maxDeliveriesAdvisorySubject("FM_TASKS", "pool_eu-west-1_echo")).toBe("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.FM_TASKS.pool_eu-west-1_echo");
    expect(nakAdvisorySubject("FM_TASKS", "pool_eu-west-1_echo_normal")).toBe("$JS.EVENT.ADVISORY.CONSUMER.MSG_NAKED.FM_TASKS.pool_eu-west-1_echo_normal");
  });

  describe("bad tokens are refused, never spliced into a subject", () => {
    it.each(BAD_TOKENS)("%j", (bad) => {
      const builders: Array<[string, () => string]> = [
        ["flowStart", () => s.flowStart(bad)],
        ["apiFlowStart", () => s.apiFlowStart(bad)],
        ["task(region)", () => s.task(bad, "echo", "normal")],
        ["task(handler)", () => s.task("eu", bad, "normal")],
        ["taskPool(region)", () => s.taskPool(bad, "echo")],
        ["taskPool(handler)", () => s.taskPool("eu", bad)],
        ["task(capability)", () => s.task("eu", "echo", "normal", ["gpu", bad])],
        ["taskPool(capability)", () => s.taskPool("eu", "echo", [bad])],
        ["tasksOfRegion", () => s.tasksOfRegion(bad)],
        ["results", () => s.results(bad)],
        ["progress(execution)", () => s.progress(bad, "step")],
        ["progress(step)", () => s.progress("exec", bad)],
        ["progressOfExecution", () => s.progressOfExecution(bad)[0]],
        ["exec(flow)", () => s.exec(bad, "exec", "started")],
        ["exec(execution)", () => s.exec("flow", bad, "started")],
        ["execOfExecution", () => s.execOfExecution(bad)],
        ["execOfFlow", () => s.execOfFlow(bad)],
        ["dlq(region)", () => s.dlq(bad, "echo")],
        ["dlq(handler)", () => s.dlq("eu", bad)],
      ];
      // Event names may span tokens (`order.paid`); every other bad token is bad for them too.
      if (bad !== "a.b") builders.push(["event", () => s.event(bad)]);
      for (const [name, build] of builders) {
        expect(build, name).toThrow(SubjectError);
      }
    });

    it.each(["order..paid", ".order", "order.", "order.*", "order.>", "a.b.c.d.e.f.g.h.i"])(
      "event name %j",
      (bad) => {
        expect(() => s.event(bad)).toThrow(SubjectError);
      },
    );
  });

  describe("parse functions return undefined for subjects that are not theirs", () => {
    const other = "other";
    const foreign = [
      "",
      p,
      `${p}.`,
      `${other}.flows.start.order-flow`,
      `${p}x.flows.start.order-flow`,
      `x${p}.flows.start.order-flow`,
      `${other}.tasks.eu.echo.normal`,
      `${other}.results.eu`,
      `${other}.progress.e.s`,
      `${other}.exec.f.e.started`,
      `${other}.events.order`,
    ];

    it.each(foreign)("%j", (subject) => {
      expect(s.parseFlowStart(subject)).toBeUndefined();
      expect(s.parseApiFlowStart(subject)).toBeUndefined();
      expect(s.parseTask(subject)).toBeUndefined();
      expect(s.parseResults(subject)).toBeUndefined();
      expect(s.parseProgress(subject)).toBeUndefined();
      expect(s.parseExec(subject)).toBeUndefined();
      expect(s.parseEvent(subject)).toBeUndefined();
    });

    it("wrong shapes under the right prefix", () => {
      expect(s.parseFlowStart(`${p}.flows.start`)).toBeUndefined();
      expect(s.parseFlowStart(`${p}.flows.start.a.b`)).toBeUndefined();
      expect(s.parseFlowStart(`${p}.flows.start.*`)).toBeUndefined();
      expect(s.parseFlowStart(`${p}.flows.start.>`)).toBeUndefined();
      expect(s.parseFlowStart(`${p}.flows.stop.a`)).toBeUndefined();
      expect(s.parseApiFlowStart(`${p}.api.flows.start`)).toBeUndefined();
      expect(s.parseApiFlowStart(`${p}.api.flows.put`)).toBeUndefined();
      expect(s.parseTask(`${p}.tasks.eu.echo`)).toBeUndefined();
      expect(s.parseTask(`${p}.tasks.eu.echo.urgent`)).toBeUndefined();
      expect(s.parseTask(`${p}.tasks.eu.echo.normal.extra`)).toBeUndefined();
      expect(s.parseTask(`${p}.tasks.*.echo.normal`)).toBeUndefined();
      expect(s.parseResults(`${p}.results`)).toBeUndefined();
      expect(s.parseResults(`${p}.results.eu.extra`)).toBeUndefined();
      expect(s.parseProgress(`${p}.progress.e`)).toBeUndefined();
      expect(s.parseProgress(`${p}.progress.e.s.x`)).toBeUndefined();
      expect(s.parseExec(`${p}.exec.f.e`)).toBeUndefined();
      expect(s.parseExec(`${p}.exec.f.e.exploded`)).toBeUndefined();
      expect(s.parseExec(`${p}.exec.f.e.step`)).toBeUndefined();
      expect(s.parseExec(`${p}.exec.*.e.started`)).toBeUndefined();
      expect(s.parseEvent(`${p}.events`)).toBeUndefined();
      expect(s.parseEvent(`${p}.events.*`)).toBeUndefined();
      // A subject of one kind is never parsed as another.
      expect(s.parseTask(s.results("eu"))).toBeUndefined();
      expect(s.parseResults(s.task("eu", "echo", "normal"))).toBeUndefined();
      expect(s.parseEvent(s.exec("f", "e", "started"))).toBeUndefined();
    });
  });
});

describe("createSubjects", () => {
  it("defaults to the fm prefix", () => {
    expect(createSubjects().prefix).toBe("fm");
    expect(createSubjects().flowStart("hello")).toBe("fm.flows.start.hello");
  });

  it.each(BAD_TOKENS)("refuses the prefix %j", (bad) => {
    expect(() => createSubjects(bad)).toThrow(SubjectError);
  });

  it("names the bad value and what it was for", () => {
    expect(() => createSubjects().task("eu.west", "echo", "normal")).toThrow(/region "eu\.west"/);
  });
});

describe("names", () => {
  it("default prefix: the names DESIGN.md publishes", () => {
    const n = createNames();
    expect(n.prefix).toBe("fm");
    expect(n.streams).toEqual({
      flows: "FM_FLOWS",
      tasks: "FM_TASKS",
      results: "FM_RESULTS",
      events: "FM_EVENTS",
      dlq: "FM_DLQ",
      // Not in DESIGN.md: where the task pools' MAX_DELIVERIES advisories wait for the engine.
      advisories: "FM_ADVISORIES",
    });
    expect(n.buckets).toEqual({
      workers: "fm_workers",
      progress: "fm_progress",
      context: "fm_context",
      checkpoints: "fm_checkpoints",
      blobs: "fm_blobs",
      handlers: "fm_handlers",
    });
    expect(n.serviceName).toBe("flowmonkey");
    expect(n.consumers.intake).toBe("engine_intake");
    expect(n.consumers.results).toBe("engine_results");
    expect(n.consumers.deadTasks).toBe("engine_dead_tasks");
    expect(n.consumers.taskPool("eu-west-1", "echo", "high")).toBe("pool_eu-west-1_echo_high");
    expect(n.consumers.legacyTaskPool("eu-west-1", "echo")).toBe("pool_eu-west-1_echo");
    expect(n.subjects.prefix).toBe("fm");
  });

  it("region blob buckets", () => {
    expect(createNames().regionBuckets.blobs("eu-west-1")).toBe("fm_blobs_eu-west-1");
    expect(createNames("acme_prod").regionBuckets.blobs("ap-south-1")).toBe("acme_prod_blobs_ap-south-1");
    expect(() => createNames().regionBuckets.blobs("EU_WEST")).toThrow(/invalid region/);
  });

  it("leaf region streams and task pool consumer names round-trip", () => {
    const n = createNames();
    expect(n.regionStreams.results("eu-west-1")).toBe("FM_RESULTS_EU_WEST_1");
    expect(createNames("acme_prod").regionStreams.results("ap-south-1")).toBe("ACME_PROD_RESULTS_AP_SOUTH_1");
    expect(() => n.regionStreams.results("EU_WEST")).toThrow(/invalid region/);
    expect(n.domainStreams.advisories("eu-west-1")).toBe("FM_ADVISORIES_EU_WEST_1");
    expect(createNames("acme_prod").domainStreams.advisories("ap_south")).toBe("ACME_PROD_ADVISORIES_AP_SOUTH");
    expect(() => n.domainStreams.advisories("eu.west")).toThrow(/invalid JetStream domain/);
    for (const [region, handler, priority] of [["eu-west-1", "echo", "high"], ["us-east-1", "video_encode", "low"], ["x1", "a-b_c", "normal"]] as const) {
      expect(n.consumers.parseTaskPool(n.consumers.taskPool(region, handler, priority))).toEqual({ region, handler, priority, capabilities: [] });
      for (const capabilities of [["gpu"], ["fp16", "gpu"], ["a_b", "c-d"]]) {
        expect(n.consumers.parseTaskPool(n.consumers.taskPool(region, handler, priority, capabilities))).toEqual({ region, handler, priority, capabilities });
      }
    }
    expect(n.consumers.taskPool("eu-west-1", "echo", "high", ["gpu", "fp16"])).toBe("pool_eu-west-1_echo~fp16~gpu_high");
    expect(n.consumers.parseTaskPool("pool_eu-west-1_echo~gpu~fp16_high")).toBeUndefined();
    expect(n.consumers.parseTaskPool("engine_results")).toBeUndefined();
    expect(n.consumers.parseTaskPool("pool_eu-west-1_echo")).toBeUndefined();
  });

  it("custom prefix: every stream, bucket and the service name derive from it", () => {
    const n = createNames("acme_prod");
    expect(n.streams).toEqual({
      flows: "ACME_PROD_FLOWS",
      tasks: "ACME_PROD_TASKS",
      results: "ACME_PROD_RESULTS",
      events: "ACME_PROD_EVENTS",
      dlq: "ACME_PROD_DLQ",
      advisories: "ACME_PROD_ADVISORIES",
    });
    expect(n.buckets).toEqual({
      workers: "acme_prod_workers",
      progress: "acme_prod_progress",
      context: "acme_prod_context",
      checkpoints: "acme_prod_checkpoints",
      blobs: "acme_prod_blobs",
      handlers: "acme_prod_handlers",
    });
    expect(n.serviceName).toBe("flowmonkey_acme_prod");
    expect(n.subjects.flowStart("x")).toBe("acme_prod.flows.start.x");
    expect(() => createNames("acme-prod")).toThrow(SubjectError);
    expect(() => createNames("Mesh")).toThrow(SubjectError);
  });

  it("two prefixes never share a stream or bucket name", () => {
    const all = (prefix: string) => {
      const n = createNames(prefix);
      return [...Object.values(n.streams), ...Object.values(n.buckets)];
    };
    const a = new Set(all("fm"));
    for (const other of ["t1a2b3c4", "fm2", "acme"]) {
      for (const name of all(other)) expect(a.has(name), `${other} → ${name}`).toBe(false);
    }
  });

  // BUG (shared/src/protocol/names.ts): names are derived with toUpperCase()/toLowerCase() and
  // '-' → '_', so distinct valid prefixes map to the same streams and buckets. A second mesh
  // provisioned with such a prefix rewrites the first one's streams (ensureStream updates the
  // subjects when they differ), and its flow starts silently stop being captured.
  it.each([
    ["fm", "FM"],
    ["acme_prod", "acme-prod"],
  ])("distinct prefixes %j and %j never share stream or bucket names (one of them is refused)", (a, b) => {
    const na = createNames(a);
    // The prefix rule (lowercase, digits, '_') makes name derivation one-to-one by refusing
    // the prefixes that would collide.
    let nb: ReturnType<typeof createNames>;
    try {
      nb = createNames(b);
    } catch (err) {
      expect(err).toBeInstanceOf(SubjectError);
      return;
    }
    expect(na.subjects.flowStartAll).not.toBe(nb.subjects.flowStartAll);
    expect(na.streams.flows).not.toBe(nb.streams.flows);
    expect(na.buckets.workers).not.toBe(nb.buckets.workers);
  });

  // BUG (shared/src/protocol/names.ts, consumers.taskPool): `pool_${region}_${handler}` is not
  // one-to-one because '_' is legal inside both tokens, so two pools share one durable consumer
  // (and the second ensureTaskPool rewrites the first one's filter subject).
  it("two task pools never share a durable consumer name", () => {
    const n = createNames();
    // Regions cannot contain '_' (it is the separator), so the two names cannot meet.
    expect(() => n.consumers.taskPool("eu_video", "encode", "normal")).toThrow();
    expect(n.consumers.taskPool("eu", "video_encode", "normal")).not.toBe(n.consumers.taskPool("eu-video", "encode", "normal"));
    // The priority is always the last token and one of three words, so it cannot blur a handler name either.
    expect(n.consumers.taskPool("eu", "a_high", "low")).not.toBe(n.consumers.taskPool("eu", "a", "high"));
    expect(() => n.consumers.taskPool("eu", "a", "urgent" as "high")).toThrow();
    // A capability-qualified pool is never the plain pool of another handler: '~' is in no handler type.
    expect(n.consumers.taskPool("eu", "a", "high", ["b"])).not.toBe(n.consumers.taskPool("eu", "a_b", "high"));
    expect(n.consumers.taskPool("eu", "a", "high", ["b", "c"])).not.toBe(n.consumers.taskPool("eu", "a", "high", ["b_c"]));
    expect(() => n.consumers.taskPool("eu", "a", "high", ["b~c"])).toThrow();
    // Consumer names stay within nats-server's 255 characters.
    expect(() => n.consumers.taskPool("eu", "a", "high", ["x".repeat(128), "y".repeat(128)])).toThrow(/at most 255/);
  });

  it("refuses a prefix that cannot be a subject token", () => {
    expect(() => createNames("a.b")).toThrow(SubjectError);
  });

  it("header names are the ones on the wire", () => {
    expect(HEADERS.msgId).toBe("Nats-Msg-Id");
    expect(HEADERS.traceparent).toBe("traceparent");
    expect(HEADERS.errorCode).toBe("Fm-Error-Code");
  });
});
