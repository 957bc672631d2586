/**
 * The sandbox process. The worker starts it through the OS isolation chain (isolation.ts) with
 * a heap limit, Node's permission model (file reads limited to this script, no child
 * processes, no worker threads), code generation from strings disallowed, the host realm's
 * intrinsics frozen and an empty environment; handler code then runs in a fresh `node:vm`
 * context per task, where the only way out is the plumbing API built by BOOTSTRAP below.
 *
 * The vm context is not the security boundary (Node says so): the process and the OS are. The
 * context keeps honest-but-careless code from `require`, `process` and timers it would leak,
 * gives a clean realm per task (prototype pollution dies with the task), and keeps host-realm
 * objects out of the handler's reach. The rules that make the last claim hold:
 *
 * - The context's global is made from a null-prototype object: a `{}` would hand the handler
 *   the host's `Object` as `globalThis.constructor`.
 * - The host functions the context holds (`BRIDGE`) take and return primitives only, never
 *   throw (each catches and answers a status number), have no prototype, and are held in the
 *   bootstrap's closure, never on an object the handler can reach. Each call from the context
 *   is wrapped in a try/catch that drops what it caught: a call made at the edge of the stack
 *   throws the host realm's RangeError before the host function's first line runs.
 * - Errors the handler sees are made in the context (`import()` too: its callback throws the
 *   context's own SandboxViolation instead of Node's host-realm error).
 * - The host never awaits, thens or reads a context object: a run's answer, a stray error's
 *   description and a load error's message are turned into JSON text inside the context and
 *   handed to the host as strings, which the host type-checks.
 * - The host realm is frozen (`--frozen-intrinsics`), and this file reads the worker's
 *   messages by own property only: were a host object ever reached again, a getter planted on
 *   a shared prototype could not catch the next task's input or secrets.
 *
 * This file imports node builtins only: the permission model lets it read nothing else.
 */
import { Socket } from "node:net";
import vm from "node:vm";

// The worker's channels (sandbox-process.ts SANDBOX_FDS): newline-framed JSON on fds of their
// own, not Node's IPC channel, whose reader in the worker buffers an unfinished message without limit.
const fromWorker = new Socket({ fd: 3, readable: true, writable: false });
const toWorker = new Socket({ fd: 4, readable: false, writable: true });

/** Handler code inside the context: everything a handler sees is built here, from primitives. */
const BOOTSTRAP = String.raw`(function (sendHost, finishHost, startTimerHost, stopTimerHost, MAX_STRAYS) {
  "use strict";
  // Intrinsics taken before any handler code runs: the handler may replace the globals later.
  const { stringify, parse: parseJson } = JSON;
  const { freeze, entries, fromEntries, defineProperty } = Object;
  const { apply } = Reflect;
  const String_ = String, Number_ = Number, Error_ = Error, EvalError_ = EvalError, Map_ = Map, Promise_ = Promise, TypeError_ = TypeError;
  const isArray = Array.isArray;
  // Host calls: primitives in, primitives out, and whatever the call throws (a host-realm error
  // at the edge of the stack) is dropped here.
  const send = (text) => { try { sendHost(text); } catch {} };
  const finish = (text) => { try { finishHost(text); } catch {} };
  class SandboxViolation extends Error_ {
    constructor(message) { super(message); this.name = "SandboxViolation"; this.code = "SANDBOX_VIOLATION"; this.retryable = false; }
  }
  const forbid = (name, why) => defineProperty(globalThis, name, {
    configurable: false,
    get() { throw new SandboxViolation(name + " is not available in the sandbox" + (why ? ": " + why : "")); },
  });
  forbid("require", "bundle dependencies with flowmonkey handler build");
  forbid("process", "the sandbox has no process, environment or exit");
  forbid("Buffer", "use Uint8Array and TextEncoder");
  forbid("setInterval", "use setTimeout"); forbid("setImmediate", "use setTimeout"); forbid("SharedArrayBuffer"); forbid("WebAssembly");
  /** A text for any thrown value, made without letting a hostile getter or toString escape. */
  const describe = (e) => {
    try {
      if ((typeof e === "object" && e !== null) || typeof e === "function") {
        const m = e.message;
        return (typeof m === "string" ? m : String_(e)).slice(0, 2048);
      }
      return String_(e).slice(0, 2048);
    } catch { return "(a value that cannot be described)"; }
  };
  let nextId = 1;
  const pending = new Map_();
  const timers = new Map_();
  let active = true;
  let strays = 0;
  const fail = (code, message, retryable) => stringify({ t: "done", outcome: "failure", failure: { code, message, retryable } });
  /** A floating rejection or a throwing timer: reported (and counted) as this run's. */
  const stray = (what, e) => {
    if (!active) return;
    if (++strays > MAX_STRAYS) return finish(fail("SANDBOX_FLOOD", "more than " + MAX_STRAYS + " stray errors (unhandled rejections, throwing timers) in one run", false));
    send(stringify({ t: "stray", message: (what + ": " + describe(e)).slice(0, 4096) }));
  };
  const note = (op, args) => { if (active) send(stringify({ t: "note", op, args })); };
  const request = (op, args) => new Promise_((resolve, reject) => {
    if (!active) return reject(new Error_("the task is over"));
    const id = nextId++;
    pending.set(id, { resolve, reject });
    send(stringify({ t: "req", id, op, args }));
  });
  globalThis.setTimeout = (fn, ms, ...args) => {
    if (typeof fn !== "function") throw new TypeError_("setTimeout needs a function");
    let id = -2;
    try { id = startTimerHost(Number_(ms) || 0); } catch {}
    if (typeof id !== "number" || id < 0) throw new SandboxViolation(id === -1 ? "at most 1000 timers may be pending" : "setTimeout failed");
    timers.set(id, () => apply(fn, undefined, args));
    return id;
  };
  globalThis.clearTimeout = (id) => { if (timers.delete(id)) { try { stopTimerHost(Number_(id)); } catch {} } };
  const parse = (text) => (text === undefined ? undefined : parseJson(text));
  const clone = (value) => (value === undefined ? undefined : parseJson(stringify(value)));
  class Wait { constructor(options) { this.options = clone(options ?? {}); } }
  class Paused extends Error_ { constructor(options) { super("paused"); this.options = options; } }
  const makeResponse = (r) => ({
    status: r.status, ok: r.status >= 200 && r.status < 300, statusText: r.statusText, url: r.url,
    headers: { get: (k) => r.headers[String_(k).toLowerCase()] ?? null, entries: () => entries(r.headers) },
    text: async () => r.body, json: async () => parseJson(r.body),
  });
  globalThis.fetch = async (url, init = {}) => {
    const headers = init.headers ? fromEntries(entries(init.headers).map(([k, v]) => [String_(k), String_(v)])) : {};
    const body = init.body === undefined || init.body === null ? undefined : String_(init.body);
    return makeResponse(await request("fetch", { url: String_(url), method: String_(init.method ?? "GET"), headers, body }));
  };
  const log = (level) => (msg, fields) => note("log", { level, msg: String_(msg).slice(0, 2048), fields: clone(fields) });
  const answer = async (inputJson, taskJson, secretsJson, resumeJson) => {
    const secrets = new Map_(entries(parseJson(secretsJson)));
    const ctx = freeze({
      input: parse(inputJson),
      task: freeze(parseJson(taskJson)),
      resume: parse(resumeJson),
      log: freeze({ debug: log("debug"), info: log("info"), warn: log("warn"), error: log("error") }),
      context: freeze({
        get: (path) => request("context.get", path === undefined ? {} : { path: String_(path) }),
        getSafe: async (path, fallback) => { try { const v = await request("context.get", { path: String_(path) }); return v === undefined ? fallback : v; } catch { return fallback; } },
        set: (path, value) => note("context.set", { path: String_(path), value: clone(value) }),
        merge: (a, b) => note("context.merge", typeof a === "string" ? { path: a, value: clone(b) } : { value: clone(a) }),
        delete: (path) => note("context.delete", { path: String_(path) }),
      }),
      progress: freeze({
        update: async (percent, message) => note("progress", { percent: Number_(percent), ...(message === undefined ? {} : { message: String_(message) }) }),
      }),
      checkpoint: freeze({
        save: async (state) => { await request("checkpoint.save", { state: clone(state) ?? null }); },
        load: () => request("checkpoint.load", {}),
        clear: async () => { await request("checkpoint.clear", {}); },
      }),
      events: freeze({ emit: async (name, data) => { await request("events.emit", { name: String_(name), data: clone(data) ?? null }); } }),
      secrets: freeze({ get: (k) => secrets.get(k), has: (k) => secrets.has(k), keys: () => [...secrets.keys()] }),
      wait: (options) => new Wait(options),
      pause: freeze({ wait: async (options) => { throw new Paused(clone(options ?? {})); } }),
    });
    try {
      const exported = globalThis.__fmHandler;
      const handler = exported && typeof exported === "object" && "default" in exported ? exported.default : exported;
      const execute = typeof handler === "function" ? handler : handler && handler.execute;
      if (typeof execute !== "function") throw new Error_("the bundle exports no handler (export default { execute(ctx) {...} })");
      const value = await apply(execute, handler, [ctx]);
      if (value instanceof Wait) return stringify({ t: "done", outcome: "wait", wait: value.options });
      return stringify({ t: "done", outcome: "success", output: value === undefined ? null : value });
    } catch (thrown) {
      if (thrown instanceof Paused) return stringify({ t: "done", outcome: "pause", wait: thrown.options });
      return failureOf(thrown);
    }
  };
  const FORBIDDEN_CODES = ["ERR_ACCESS_DENIED", "ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING", "ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING_FLAG"];
  /** The failure a thrown value reports; never throws. */
  const failureOf = (thrown) => {
    try {
      const e = thrown !== null && typeof thrown === "object" ? thrown : new Error_(describe(thrown));
      const code = e.code, retryable = e.retryable;
      // Reaching past the sandbox: eval/new Function, import(), or (past the context) the permission model.
      const violation = e instanceof EvalError_ || e.name === "EvalError" || code === "SANDBOX_VIOLATION" || FORBIDDEN_CODES.includes(code);
      return stringify({ t: "done", outcome: "failure", failure: {
        code: violation ? "SANDBOX_VIOLATION" : typeof code === "string" && code ? code.slice(0, 128) : "HANDLER_FAILED",
        message: describe(e).slice(0, 16384),
        ...(violation ? { retryable: false } : typeof retryable === "boolean" ? { retryable } : {}),
      } });
    } catch {
      return fail("HANDLER_FAILED", "the handler threw a value that cannot be described", undefined);
    }
  };
  return freeze({
    /** Runs the handler; its answer reaches the host as JSON text through finishHost, never as a promise. */
    run(input, task, secrets, resume) {
      (async () => {
        let text;
        try { text = await answer(input, task, secrets, resume); } catch (e) { text = failureOf(e); }
        finish(typeof text === "string" ? text : fail("HANDLER_FAILED", "the handler's answer could not be encoded", undefined));
      })();
    },
    deliver(id, ok, payload) {
      const p = pending.get(id);
      if (!p) return;
      pending.delete(id);
      try {
        if (ok) p.resolve(parse(payload));
        else { const f = parseJson(payload); const e = new Error_(f.message); e.code = f.code; e.retryable = f.retryable; p.reject(e); }
      } catch (e) { p.reject(new Error_("the worker's reply could not be read")); }
    },
    fire(id) {
      const fn = timers.get(id);
      timers.delete(id);
      if (!fn) return;
      try { fn(); } catch (e) { stray("a timer callback threw", e); }
    },
    rejected(reason) { stray("an unhandled rejection", reason); },
    describe,
    violation: (message) => new SandboxViolation(String_(message)),
    end() { active = false; timers.clear(); pending.clear(); },
  });
})`;

/** What the bootstrap returns, called by the host with primitives only. */
interface Api {
  run(input: string, task: string, secrets: string, resume: string | undefined): void;
  deliver(id: number, ok: boolean, payload: string | undefined): void;
  fire(id: number): void;
  rejected(reason: unknown): void;
  describe(thrown: unknown): unknown;
  violation(message: string): unknown;
  end(): void;
}

// What this process has handed to its channel and the worker has not read yet. A handler
// that sends in a synchronous loop (100,000 progress updates) would otherwise queue it all here
// until the process hits its memory limit and dies of that before the worker reads enough to
// call it a flood. Past the cap the run itself ends with SANDBOX_FLOOD (the worker's own
// per-second budget stays the authority; this only keeps the process's memory bounded).
// (Each queued message also holds a few hundred bytes of heap: hence a count as well as bytes.)
const MAX_UNSENT_BYTES = 8 << 20;
const MAX_UNSENT_MESSAGES = 10_000;
/** The largest message sent, in bytes; the worker refuses longer ones (sandbox-process.ts MAX_MESSAGE_BYTES) and kills the sandbox. */
const MAX_MESSAGE_BYTES = 4 << 20;
/** Stray errors (unhandled rejections, throwing timers) a run may report before it ends with SANDBOX_FLOOD. */
const MAX_STRAYS = 100;
let unsentBytes = 0;
let unsentMessages = 0;
// A run's end and the process's idle signal always go out, flood or not.
const ESSENTIAL = /^\d+\|\{"t":"(done|idle)"/;
const send = (message: string) => {
  if ((unsentBytes > MAX_UNSENT_BYTES || unsentMessages > MAX_UNSENT_MESSAGES) && !ESSENTIAL.test(message)) return current?.flooded();
  unsentBytes += message.length;
  unsentMessages++;
  toWorker.write(`${message}\n`, () => {
    unsentBytes -= message.length;
    unsentMessages--;
  });
};
const tooLarge = (text: string) => text.length > MAX_MESSAGE_BYTES || Buffer.byteLength(text) > MAX_MESSAGE_BYTES;
const MAX_TIMER_MS = 60_000;
const MAX_TIMERS = 1000;
// The bundle's top level (module setup) must not take longer than this.
const LOAD_TIMEOUT_MS = 5000;

let script: vm.Script | undefined;
let current: { api: Api; run: number; flooded(): void } | undefined;
/** The realm whose bundle top level is being evaluated (its `import()` calls land here). */
let loading: Api | undefined;
let nextTimer = 1;

/** A host function the context may hold: no prototype, so nothing of the host realm hangs off it. */
function bridge<F extends (...args: never[]) => unknown>(fn: F): F {
  Object.setPrototypeOf(fn, null);
  return fn;
}

/** A realm ready for the next task: context, plumbing and the bundle's top level already evaluated. */
interface Prepared {
  api: Api;
  timers: Map<number, NodeJS.Timeout>;
  assign(run: number, onFinish: (json: string) => void): void;
  tag(json: string): void;
  /** Why the bundle's top level failed in this realm (a message), if it did. */
  loadError: string | undefined;
}
let spare: Prepared | undefined;

/**
 * A fresh realm per task, so that nothing one task does to its globals or prototypes reaches
 * the next. Creating it costs about a millisecond, so it is made while the process is idle
 * (after init and after each task), not on the task's path.
 */
function prepare(): Prepared {
  const timers = new Map<number, NodeJS.Timeout>();
  let run = -1;
  let onFinish: ((json: string) => void) | undefined;
  // A null-prototype global: with `{}` the context's `globalThis.constructor` is the host's Object.
  const context = vm.createContext(Object.create(null) as object, { codeGeneration: { strings: false, wasm: false } });
  const tag = (json: string) => send(`${run}|${json}`);
  // The bridges: primitives in, primitives out, no throw.
  const sendHost = bridge((text: unknown): void => {
    if (typeof text !== "string") return;
    if (!tooLarge(text)) return tag(text);
    onFinish?.(JSON.stringify({ t: "done", outcome: "failure", failure: { code: "PAYLOAD_TOO_LARGE", message: `a plumbing call carried more than ${MAX_MESSAGE_BYTES >> 20} MiB`, retryable: false } }));
  });
  const finishHost = bridge((text: unknown): void => {
    if (typeof text !== "string") return;
    onFinish?.(!tooLarge(text) ? text : JSON.stringify({ t: "done", outcome: "failure", failure: { code: "PAYLOAD_TOO_LARGE", message: `the handler's output is larger than ${MAX_MESSAGE_BYTES >> 20} MiB as JSON`, retryable: false } }));
  });
  const startTimerHost = bridge((ms: unknown): number => {
    try {
      if (timers.size >= MAX_TIMERS) return -1;
      const id = nextTimer++;
      const delay = Math.min(Math.max(0, typeof ms === "number" && ms === ms ? ms : 0), MAX_TIMER_MS);
      timers.set(
        id,
        setTimeout(() => {
          timers.delete(id);
          if (current !== undefined && current.run === run) call(() => current!.api.fire(id));
        }, delay),
      );
      return id;
    } catch {
      return -2;
    }
  });
  const stopTimerHost = bridge((id: unknown): void => {
    if (typeof id !== "number") return;
    clearTimeout(timers.get(id));
    timers.delete(id);
  });
  const factory = vm.runInContext(BOOTSTRAP, context) as (...args: unknown[]) => Api;
  // Read once, before any bundle code has run in this realm: nothing of the handler's yet.
  const made = factory(sendHost, finishHost, startTimerHost, stopTimerHost, MAX_STRAYS);
  const api: Api = {
    run: made.run, deliver: made.deliver, fire: made.fire, rejected: made.rejected, describe: made.describe, violation: made.violation, end: made.end,
  };
  let loadError: string | undefined;
  const started = performance.now();
  loading = api;
  try {
    script!.runInContext(context, { timeout: LOAD_TIMEOUT_MS });
  } catch (thrown) {
    // The bundle's own throw is described inside its realm; the host's timeout error is the host's.
    if (performance.now() - started >= LOAD_TIMEOUT_MS || thrown instanceof Error) loadError = `its top level did not finish within ${LOAD_TIMEOUT_MS} ms`;
    else loadError = call(() => api.describe(thrown)) ?? "its top level threw";
  } finally {
    loading = undefined;
  }
  return { api, timers, assign: (r, f) => ((run = r), (onFinish = f)), tag, loadError };
}

/** Calls into a context: the result is kept only when it is a string, a throw is dropped unread. */
function call(fn: () => unknown): string | undefined {
  try {
    const value = fn();
    return typeof value === "string" ? value : undefined;
  } catch {
    return undefined;
  }
}

function startRun(run: number, input: string, task: string, secrets: string, resume: string | undefined): void {
  const realm = spare ?? prepare();
  spare = undefined;
  const { api, timers, tag } = realm;
  let finished = false;
  const finish = (json: string) => {
    if (finished) return;
    finished = true;
    for (const t of timers.values()) clearTimeout(t);
    timers.clear();
    call(() => api.end());
    tag(json);
    // Idle only after a macrotask turn: whatever the handler left queued has run by then, so
    // a loop it started after returning shows up as a process that never says idle.
    setImmediate(() => {
      if (current?.run !== run) return;
      current = undefined;
      send(`${run}|{"t":"idle"}`);
      // The next realm is made in the next turn, while the worker picks the next task.
      setImmediate(() => {
        if (current === undefined && spare === undefined) spare = prepare();
      });
    });
  };
  realm.assign(run, finish);
  const flooded = () =>
    finish(JSON.stringify({ t: "done", outcome: "failure", failure: { code: "SANDBOX_FLOOD", message: `the handler sent messages faster than the worker reads them (more than ${MAX_UNSENT_MESSAGES} or ${MAX_UNSENT_BYTES >> 20} MiB unread)`, retryable: false } }));
  current = { api, run, flooded };
  if (realm.loadError !== undefined) {
    finish(JSON.stringify({ t: "done", outcome: "failure", failure: { code: "HANDLER_LOAD_FAILED", message: `the bundle does not load: ${realm.loadError}`, retryable: false } }));
    return;
  }
  try {
    api.run(input, task, secrets, resume);
  } catch {
    finish(JSON.stringify({ t: "done", outcome: "failure", failure: { code: "HANDLER_FAILED", message: "the handler could not be started" } }));
  }
}

/** An own property of a worker message (its shape is plain; no prototype lookup). */
const own = (m: object, key: string): unknown => (Object.hasOwn(m, key) ? (m as Record<string, unknown>)[key] : undefined);

// Messages from the worker are trusted (it started this process): plain shapes, read by own property.
let fromWorkerText = "";
fromWorker.setEncoding("utf8");
fromWorker.on("data", (chunk: string) => {
  const lines = (fromWorkerText + chunk).split("\n");
  fromWorkerText = lines.pop()!;
  for (const line of lines) onWorkerMessage(JSON.parse(line) as unknown);
});
function onWorkerMessage(m: unknown): void {
  if (typeof m !== "object" || m === null) return;
  const t = own(m, "t");
  if (t === "init") {
    try {
      script = new vm.Script(String(own(m, "code")), {
        filename: String(own(m, "filename")),
        // import() would otherwise reject with Node's host-realm error: the handler gets its realm's own.
        // (Node 20 calls it only with --experimental-vm-modules; sandboxExecArgv sets it.)
        importModuleDynamically: (() => {
          const realm = loading ?? current?.api;
          let violation: unknown;
          try {
            violation = realm?.violation("import() is not available in the sandbox: bundle dependencies with flowmonkey handler build");
          } catch {
            // dropped unread, as every throw out of a context
          }
          throw violation ?? "import() is not available in the sandbox";
        }) as never,
      });
      spare = prepare();
      send(`0|{"t":"ready"}`);
    } catch (err) {
      send(`0|${JSON.stringify({ t: "init-failed", message: String((err as Error)?.message ?? err).slice(0, 16_000) })}`);
    }
  } else if (t === "run") {
    const resume = own(m, "resume");
    startRun(Number(own(m, "run")), String(own(m, "input")), String(own(m, "task")), String(own(m, "secrets")), resume === undefined ? undefined : String(resume));
  } else if (t === "reply" && current !== undefined && current.run === own(m, "run")) {
    const payload = own(m, "payload");
    const { api } = current;
    call(() => api.deliver(Number(own(m, "id")), own(m, "ok") === true, payload === undefined ? undefined : String(payload)));
  }
}
// The worker is gone (its channel closed): nothing can use this process's work any more, and
// nobody would kill it at its hard TTL. Found as orphaned sandboxes left spinning after test runs.
const workerGone = () => process.exit(1);
fromWorker.on("end", workerGone);
fromWorker.on("error", workerGone);
toWorker.on("error", workerGone);
// A floating rejection is the handler's bug, not a reason to lose the process (and the task it
// runs): it is described inside the run's realm and reported as the run's (the worker counts
// these in its flood budget). Rejections outside a run (a finished realm's leftovers) are dropped.
process.on("unhandledRejection", (reason) => {
  const run = current;
  if (run === undefined || reason instanceof Error) return; // a host-realm error is never handed to a context
  call(() => run.api.rejected(reason));
});
// Handler code runs only inside the context's own try/catch (timers, the run), so this is the
// host's bug: reported without reading the error.
process.on("uncaughtException", () => {
  if (current !== undefined) send(`${current.run}|{"t":"stray","message":"an uncaught exception in the sandbox process"}`);
});
send(`0|{"t":"hello"}`);
