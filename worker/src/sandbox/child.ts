/**
 * The sandbox process. The worker forks it with a heap limit, Node's permission model (file
 * reads limited to this script, no child processes, no worker threads), code generation from
 * strings disallowed and an empty environment; handler code then runs in a fresh `node:vm`
 * context per task, where the only way out is the plumbing API built by BOOTSTRAP below.
 *
 * The vm context is not the security boundary (Node says so): the process is. The context
 * keeps honest-but-careless code from `require`, `process` and timers it would leak, gives a
 * clean realm per task (prototype pollution dies with the task), and crossing into it only
 * primitives (JSON strings and numbers) keeps host objects out of the handler's reach.
 *
 * This file imports node builtins only: the permission model lets it read nothing else.
 */
import vm from "node:vm";

/** Handler code inside the context: everything a handler sees is built here, from primitives. */
const BOOTSTRAP = String.raw`(function (send, startTimer, stopTimer) {
  "use strict";
  class SandboxViolation extends Error {
    constructor(message) { super(message); this.name = "SandboxViolation"; this.code = "SANDBOX_VIOLATION"; this.retryable = false; }
  }
  const forbid = (name, why) => Object.defineProperty(globalThis, name, {
    configurable: false,
    get() { throw new SandboxViolation(name + " is not available in the sandbox" + (why ? ": " + why : "")); },
  });
  forbid("require", "bundle dependencies with flowmonkey handler build");
  forbid("process", "the sandbox has no process, environment or exit");
  forbid("Buffer", "use Uint8Array and TextEncoder");
  forbid("setInterval", "use setTimeout"); forbid("setImmediate", "use setTimeout"); forbid("SharedArrayBuffer"); forbid("WebAssembly");
  let nextId = 1;
  const pending = new Map();
  const timers = new Map();
  let active = true;
  const note = (op, args) => { if (active) send(JSON.stringify({ t: "note", op, args })); };
  const request = (op, args) => new Promise((resolve, reject) => {
    if (!active) return reject(new Error("the task is over"));
    const id = nextId++;
    pending.set(id, { resolve, reject });
    send(JSON.stringify({ t: "req", id, op, args }));
  });
  globalThis.setTimeout = (fn, ms, ...args) => {
    if (typeof fn !== "function") throw new TypeError("setTimeout needs a function");
    const id = startTimer(Number(ms) || 0);
    timers.set(id, () => fn(...args));
    return id;
  };
  globalThis.clearTimeout = (id) => { if (timers.delete(id)) stopTimer(id); };
  const parse = (text) => (text === undefined ? undefined : JSON.parse(text));
  const clone = (value) => (value === undefined ? undefined : JSON.parse(JSON.stringify(value)));
  const FORBIDDEN_CODES = ["ERR_ACCESS_DENIED", "ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING", "ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING_FLAG"];
  class Wait { constructor(options) { this.options = clone(options ?? {}); } }
  class Paused extends Error { constructor(options) { super("paused"); this.options = options; } }
  const makeResponse = (r) => ({
    status: r.status, ok: r.status >= 200 && r.status < 300, statusText: r.statusText, url: r.url,
    headers: { get: (k) => r.headers[String(k).toLowerCase()] ?? null, entries: () => Object.entries(r.headers) },
    text: async () => r.body, json: async () => JSON.parse(r.body),
  });
  globalThis.fetch = async (url, init = {}) => {
    const headers = init.headers ? Object.fromEntries(Object.entries(init.headers).map(([k, v]) => [String(k), String(v)])) : {};
    const body = init.body === undefined || init.body === null ? undefined : String(init.body);
    return makeResponse(await request("fetch", { url: String(url), method: String(init.method ?? "GET"), headers, body }));
  };
  const log = (level) => (msg, fields) => note("log", { level, msg: String(msg).slice(0, 2048), fields: clone(fields) });
  const run = async (inputJson, taskJson, secretsJson, resumeJson) => {
    const secrets = new Map(Object.entries(JSON.parse(secretsJson)));
    const ctx = Object.freeze({
      input: parse(inputJson),
      task: Object.freeze(JSON.parse(taskJson)),
      resume: parse(resumeJson),
      log: Object.freeze({ debug: log("debug"), info: log("info"), warn: log("warn"), error: log("error") }),
      context: Object.freeze({
        get: (path) => request("context.get", path === undefined ? {} : { path: String(path) }),
        getSafe: async (path, fallback) => { try { const v = await request("context.get", { path: String(path) }); return v === undefined ? fallback : v; } catch { return fallback; } },
        set: (path, value) => note("context.set", { path: String(path), value: clone(value) }),
        merge: (a, b) => note("context.merge", typeof a === "string" ? { path: a, value: clone(b) } : { value: clone(a) }),
        delete: (path) => note("context.delete", { path: String(path) }),
      }),
      progress: Object.freeze({
        update: async (percent, message) => note("progress", { percent: Number(percent), ...(message === undefined ? {} : { message: String(message) }) }),
      }),
      checkpoint: Object.freeze({
        save: async (state) => { await request("checkpoint.save", { state: clone(state) ?? null }); },
        load: () => request("checkpoint.load", {}),
        clear: async () => { await request("checkpoint.clear", {}); },
      }),
      events: Object.freeze({ emit: async (name, data) => { await request("events.emit", { name: String(name), data: clone(data) ?? null }); } }),
      secrets: Object.freeze({ get: (k) => secrets.get(k), has: (k) => secrets.has(k), keys: () => [...secrets.keys()] }),
      wait: (options) => new Wait(options),
      pause: Object.freeze({ wait: async (options) => { throw new Paused(clone(options ?? {})); } }),
    });
    try {
      const exported = globalThis.__fmHandler;
      const handler = exported && typeof exported === "object" && "default" in exported ? exported.default : exported;
      const execute = typeof handler === "function" ? handler : handler && handler.execute;
      if (typeof execute !== "function") throw new Error("the bundle exports no handler (export default { execute(ctx) {...} })");
      const value = await execute.call(handler, ctx);
      if (value instanceof Wait) return JSON.stringify({ t: "done", outcome: "wait", wait: value.options });
      return JSON.stringify({ t: "done", outcome: "success", output: value === undefined ? null : value });
    } catch (thrown) {
      if (thrown instanceof Paused) return JSON.stringify({ t: "done", outcome: "pause", wait: thrown.options });
      const e = thrown !== null && typeof thrown === "object" ? thrown : new Error(String(thrown));
      // Reaching past the sandbox: eval/new Function, import(), or (past the context) the permission model.
      const violation = e instanceof EvalError || e.name === "EvalError" || FORBIDDEN_CODES.includes(e.code);
      return JSON.stringify({ t: "done", outcome: "failure", failure: {
        code: violation ? "SANDBOX_VIOLATION" : typeof e.code === "string" && e.code ? e.code.slice(0, 128) : "HANDLER_FAILED",
        ...(violation ? { retryable: false } : {}),
        message: String(e.message ?? e).slice(0, 16384),
        ...(typeof e.retryable === "boolean" ? { retryable: e.retryable } : {}),
      } });
    }
  };
  return {
    run,
    deliver(id, ok, payload) {
      const p = pending.get(id);
      if (!p) return;
      pending.delete(id);
      if (ok) p.resolve(parse(payload));
      else { const f = JSON.parse(payload); const e = new Error(f.message); e.code = f.code; e.retryable = f.retryable; p.reject(e); }
    },
    fire(id) { const fn = timers.get(id); timers.delete(id); if (fn) fn(); },
    end() { active = false; timers.clear(); pending.clear(); },
  };
})`;

interface Api {
  run(input: string, task: string, secrets: string, resume: string | undefined): Promise<string>;
  deliver(id: number, ok: boolean, payload: string | undefined): void;
  fire(id: number): void;
  end(): void;
}

// What this process has handed to its IPC channel and the worker has not read yet. A handler
// that sends in a synchronous loop (100,000 progress updates) would otherwise queue it all here
// until the process hits its memory limit and dies of that before the worker reads enough to
// call it a flood. Past the cap the run itself ends with SANDBOX_FLOOD (the worker's own
// per-second budget stays the authority; this only keeps the process's memory bounded).
// (Each queued message also holds a few hundred bytes of heap: hence a count as well as bytes.)
const MAX_UNSENT_BYTES = 8 << 20;
const MAX_UNSENT_MESSAGES = 10_000;
let unsentBytes = 0;
let unsentMessages = 0;
// A run's end and the process's idle signal always go out, flood or not.
const ESSENTIAL = /^\d+\|\{"t":"(done|idle)"/;
const send = (message: string) => {
  if ((unsentBytes > MAX_UNSENT_BYTES || unsentMessages > MAX_UNSENT_MESSAGES) && !ESSENTIAL.test(message)) return current?.flooded();
  unsentBytes += message.length;
  unsentMessages++;
  process.send?.(message, undefined, undefined, () => {
    unsentBytes -= message.length;
    unsentMessages--;
  });
};
const MAX_TIMER_MS = 60_000;
const MAX_TIMERS = 1000;
// The bundle's top level (module setup) must not take longer than this.
const LOAD_TIMEOUT_MS = 5000;

let script: vm.Script | undefined;
let current: { api: Api; run: number; flooded(): void } | undefined;
let nextTimer = 1;

/** A realm ready for the next task: context, plumbing and the bundle's top level already evaluated. */
interface Prepared {
  api: Api;
  timers: Map<number, NodeJS.Timeout>;
  assign(run: number): void;
  tag(json: string): void;
  loadError: unknown;
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
  const context = vm.createContext({}, { codeGeneration: { strings: false, wasm: false } });
  const tag = (json: string) => send(`${run}|${json}`);
  const startTimer = (ms: number) => {
    if (timers.size >= MAX_TIMERS) throw new Error(`at most ${MAX_TIMERS} pending timers`);
    const id = nextTimer++;
    const delay = Math.min(Math.max(0, ms), MAX_TIMER_MS);
    timers.set(id, setTimeout(() => { timers.delete(id); if (current !== undefined && current.run === run) current.api.fire(id); }, delay));
    return id;
  };
  const stopTimer = (id: number) => { clearTimeout(timers.get(id)); timers.delete(id); };
  const factory = vm.runInContext(BOOTSTRAP, context) as (s: typeof tag, st: typeof startTimer, sp: typeof stopTimer) => Api;
  const api = factory(tag, startTimer, stopTimer);
  let loadError: unknown;
  try {
    script!.runInContext(context, { timeout: LOAD_TIMEOUT_MS });
  } catch (thrown) {
    loadError = thrown; // reported by the task that gets this realm
  }
  return { api, timers, assign: (r) => (run = r), tag, loadError };
}

function startRun(run: number, input: string, task: string, secrets: string, resume: string | undefined): void {
  const realm = spare ?? prepare();
  spare = undefined;
  realm.assign(run);
  const { api, timers, tag } = realm;
  let finished = false;
  const finish = (json: string) => {
    if (finished) return;
    finished = true;
    for (const t of timers.values()) clearTimeout(t);
    timers.clear();
    api.end();
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
  const flooded = () =>
    finish(JSON.stringify({ t: "done", outcome: "failure", failure: { code: "SANDBOX_FLOOD", message: `the handler sent messages faster than the worker reads them (more than ${MAX_UNSENT_MESSAGES} or ${MAX_UNSENT_BYTES >> 20} MiB unread)`, retryable: false } }));
  current = { api, run, flooded };
  if (realm.loadError !== undefined) {
    const e = realm.loadError as { code?: unknown; message?: unknown };
    finish(JSON.stringify({ t: "done", outcome: "failure", failure: { code: typeof e?.code === "string" ? e.code : "HANDLER_FAILED", message: String(e?.message ?? e), retryable: false } }));
    return;
  }
  api.run(input, task, secrets, resume).then(finish, (err: unknown) => finish(JSON.stringify({ t: "done", outcome: "failure", failure: { code: "HANDLER_FAILED", message: String(err) } })));
}

// Messages from the worker are trusted (it forked this process): plain shapes, no validation.
process.on("message", (raw: unknown) => {
  const m = raw as { t: string; [k: string]: unknown };
  if (m.t === "init") {
    try {
      script = new vm.Script(String(m.code), { filename: String(m.filename) });
      spare = prepare();
      send(`0|{"t":"ready"}`);
    } catch (err) {
      send(`0|${JSON.stringify({ t: "init-failed", message: String((err as Error)?.message ?? err) })}`);
    }
  } else if (m.t === "run") {
    startRun(Number(m.run), String(m.input), String(m.task), String(m.secrets), m.resume === undefined ? undefined : String(m.resume));
  } else if (m.t === "reply" && current !== undefined && current.run === m.run) {
    current.api.deliver(Number(m.id), Boolean(m.ok), m.payload === undefined ? undefined : String(m.payload));
  }
});
// A floating rejection or a throw from a timer callback is the handler's bug, not a reason to
// lose the process (and the task it runs): it is reported and the run goes on.
// The worker is gone (its IPC channel closed): nothing can use this process's work any more, and
// nobody would kill it at its hard TTL. Found as orphaned sandboxes left spinning after test runs.
process.on("disconnect", () => process.exit(1));
process.on("unhandledRejection", (reason) => send(`0|${JSON.stringify({ t: "stray", message: String((reason as Error)?.message ?? reason).slice(0, 2048) })}`));
process.on("uncaughtException", (err) => send(`0|${JSON.stringify({ t: "stray", message: String(err?.message ?? err).slice(0, 2048) })}`));
send(`0|{"t":"hello"}`);
