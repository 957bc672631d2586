// FlowMonkey dashboard: plain JS over the gateway's HTTP API.
// The list is polled (it is the source of truth); /v1/events (SSE) makes statuses and
// progress bars move between polls. Every text goes through textContent: event payloads
// come from anyone who can publish on NATS, so nothing is ever inserted as HTML.

const POLL_MS = 3000;
const HEALTH_MS = 5000;
const TERMINAL = new Set(["completed", "failed", "cancelled"]);
const $ = (id) => document.getElementById(id);

const state = {
  executions: new Map(), // id → summary from GET /v1/executions (statuses patched by events)
  latest: new Map(), // executionId → { stepId, percent, message } newest progress, for the list
  stepProgress: new Map(), // `${executionId}/${stepId}` → { percent, message }
  selected: null, // the execution view shown in the detail card
  flowExamples: new Map(), // flowId → its latest version's `example:` input
};

// ---- API token -----------------------------------------------------------------------
// A gateway with FM_API_TOKENS answers 401 until a token is sent. The dashboard then asks for
// one and keeps it in this tab's sessionStorage (gone when the tab closes). fetch sends it as a
// header; EventSource cannot, so the event stream gets it as ?access_token= (the gateway takes
// it there, on the stream routes only).
const TOKEN_KEY = "flowmonkey.apiToken";
let apiToken = sessionStorage.getItem(TOKEN_KEY) ?? "";

function askForToken(why) {
  const form = $("token-form");
  if (!form.hidden) return;
  form.hidden = false;
  $("token").title = why;
  $("token").focus();
}

/** fetch + JSON; a problem+json body becomes an Error with its code and detail. */
async function api(path, options = {}) {
  const auth = apiToken ? { authorization: `Bearer ${apiToken}` } : {};
  const res = await fetch(path, { ...options, headers: { "content-type": "application/json", ...auth, ...options.headers } });
  const body = await res.json().catch(() => null);
  if (res.status === 401) askForToken(body?.detail ?? "this gateway needs an API token");
  if (!res.ok) throw new Error(body && body.code ? `${body.code}: ${body.detail}` : `HTTP ${res.status}`);
  return body;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child ?? "")));
  return node;
}

function bar(percent, status) {
  const fill = el("div");
  fill.style.width = `${Math.max(0, Math.min(100, percent))}%`;
  return el("div", { class: `bar ${status ?? ""}`, role: "progressbar", "aria-valuenow": String(Math.round(percent)) }, fill);
}

const time = (iso) => (iso ? new Date(iso).toLocaleTimeString() : "");
const short = (id) => (id.length > 12 ? `${id.slice(0, 12)}…` : id);

// ---- list ----------------------------------------------------------------------------

async function refreshList() {
  const status = $("status-filter").value;
  try {
    const { executions } = await api(`/v1/executions?limit=25${status ? `&status=${status}` : ""}`);
    state.executions = new Map(executions.map((e) => [e.id, e]));
    $("list-error").textContent = "";
    renderList();
  } catch (err) {
    $("list-error").textContent = `Cannot list executions: ${err.message}`;
  }
}

function rowProgress(execution) {
  if (execution.status === "completed") return bar(100, "completed");
  const latest = state.latest.get(execution.id);
  if (!latest || TERMINAL.has(execution.status)) return el("span", { class: "hint" }, TERMINAL.has(execution.status) ? "—" : "");
  return el("div", {}, bar(latest.percent), el("span", { class: "hint mono" }, latest.stepId));
}

function renderList() {
  const rows = [...state.executions.values()].map((e) =>
    el(
      "tr",
      { class: state.selected?.id === e.id ? "selected" : "", onclick: () => select(e.id, { reveal: true }) },
      el("td", { class: "mono", title: e.id }, short(e.id)),
      el("td", {}, e.flowId),
      el("td", {}, el("span", { class: `status ${e.status}` }, e.status)),
      el("td", {}, rowProgress(e)),
      el("td", {}, time(e.createdAt)),
    ),
  );
  $("executions").replaceChildren(...rows);
}

// ---- detail --------------------------------------------------------------------------

/** Shows an execution's detail; `reveal` (a click) brings the detail card into view. */
async function select(id, { reveal = false } = {}) {
  try {
    state.selected = await api(`/v1/executions/${encodeURIComponent(id)}`);
    renderDetail();
    renderList();
    if (reveal) $("detail-card").scrollIntoView({ block: "start" });
  } catch (err) {
    $("list-error").textContent = `Cannot load ${id}: ${err.message}`;
  }
}

/** A waiting step's resume token with a Resume button; a sub-flow step's link to its child. */
function stepActions(x, s) {
  if (s.status === "waiting" && s.wait) {
    const resume = el("button", { type: "button", class: "resume" }, "Resume");
    resume.addEventListener("click", async () => {
      resume.disabled = true;
      try {
        await api("/v1/resume", { method: "POST", body: JSON.stringify({ resumeToken: s.wait.resumeToken }) });
        await select(x.id);
      } catch (err) {
        resume.disabled = false;
        $("detail-status").append(` — resume failed: ${err.message}`);
      }
    });
    return [el("span", { class: "mono token", title: "resume token" }, s.wait.resumeToken), resume];
  }
  if (s.childExecutionId) {
    return [el("a", { href: "#", class: "mono", onclick: (ev) => (ev.preventDefault(), select(s.childExecutionId, { reveal: true })) }, s.childExecutionId)];
  }
  return [];
}

function stepPercent(executionId, step) {
  if (["completed", "skipped", "failed", "cancelled"].includes(step.status)) return 100;
  const live = state.stepProgress.get(`${executionId}/${step.stepId}`)?.percent;
  if (live !== undefined) return live;
  return step.map && step.map.total > 0 ? Math.floor((100 * step.map.done) / step.map.total) : 0;
}

/** What a step runs: its handler (or sub-flow) and attempts; a map step's items done of total instead. */
function stepHint(s) {
  if (s.map) {
    const failed = s.map.failed > 0 ? `, ${s.map.failed} failed` : "";
    return el("span", { class: "hint map", "data-done": String(s.map.done), "data-total": String(s.map.total) }, `${s.handler} · ${s.map.done}/${s.map.total} items${failed}`);
  }
  return el("span", { class: "hint" }, `${s.flow ? `flow ${s.flow}` : s.handler} ×${s.attempts}`);
}

/**
 * When a step ran, on the execution's own time axis (its start to its end, or now): steps that
 * ran in parallel show overlapping spans. Nothing for a step that has not started.
 */
function timeline(x, s) {
  const track = el("div", { class: "timeline" });
  if (!s.startedAt) return track;
  const origin = Date.parse(x.createdAt);
  const now = Date.now();
  const total = Math.max(1, (x.completedAt ? Date.parse(x.completedAt) : now) - origin);
  const from = Date.parse(s.startedAt) - origin;
  const to = (s.completedAt ? Date.parse(s.completedAt) : now) - origin;
  const span = el("i", { "data-from": String(from), "data-to": String(to) });
  span.style.left = `${Math.max(0, Math.min(100, (100 * from) / total))}%`;
  span.style.width = `${Math.max(0.5, Math.min(100, (100 * (to - from)) / total))}%`;
  track.title = `started +${from} ms, ${s.completedAt ? `took ${to - from} ms` : "running"}`;
  track.append(span);
  return track;
}

function renderDetail() {
  const x = state.selected;
  $("detail-card").hidden = !x;
  if (!x) return;
  $("detail-title").textContent = `${x.flowId} · ${x.id}`;
  $("detail-status").replaceChildren(
    el("span", { class: `status ${x.status}` }, x.status),
    ` · version ${x.flowVersion} · region ${x.region} · started ${time(x.createdAt)}`,
    ...(x.parentExecutionId
      ? [" · sub-flow of ", el("a", { href: "#", class: "mono", onclick: (ev) => (ev.preventDefault(), select(x.parentExecutionId, { reveal: true })) }, x.parentExecutionId)]
      : []),
  );
  $("cancel").disabled = TERMINAL.has(x.status);
  $("steps").replaceChildren(
    ...x.steps.map((s) => {
      const progress = state.stepProgress.get(`${x.id}/${s.stepId}`);
      const message = s.error ? `${s.error.code}: ${s.error.message}` : progress?.message ?? "";
      return el(
        "li",
        {},
        el("span", { class: "mono" }, s.stepId),
        el("span", { class: `status ${s.status}` }, s.status),
        bar(stepPercent(x.id, s), s.status),
        stepHint(s),
        timeline(x, s),
        el("span", { class: "message" }, message),
        ...stepActions(x, s),
      );
    }),
  );
  const result = x.error ?? x.output;
  $("detail-output").textContent = result === undefined ? "(none yet)" : JSON.stringify(result, null, 2);
}

// ---- live events ---------------------------------------------------------------------

function onExec(event) {
  const summary = state.executions.get(event.executionId);
  if (summary) summary.status = event.status;
  else if (event.type === "started") void refreshList(); // a new execution: show it now, not at the next poll

  const x = state.selected;
  if (x && x.id === event.executionId) {
    x.status = event.status;
    const step = event.stepId && x.steps.find((s) => s.stepId === event.stepId);
    if (step) {
      const next = { "step.dispatched": "dispatched", "step.completed": "completed", "step.failed": "failed", "step.skipped": "skipped" }[event.type];
      if (next) step.status = next;
      if (event.type === "step.dispatched") state.stepProgress.delete(`${x.id}/${step.stepId}`);
    }
    // The event carries no full view (outputs, attempts); fetch it once the execution ends.
    if (TERMINAL.has(event.status)) void select(x.id);
    else renderDetail();
  }
  if (TERMINAL.has(event.status)) state.latest.delete(event.executionId);
  renderList();
}

function onProgress(p) {
  const step = state.selected?.id === p.executionId && state.selected.steps.find((s) => s.stepId === p.stepId);
  // A map step's bar is the engine's items done / total (no taskId), not one item's own progress.
  const itemOfMap = step && step.map && p.taskId;
  if (!itemOfMap) {
    state.stepProgress.set(`${p.executionId}/${p.stepId}`, { percent: p.percent, message: p.message });
    state.latest.set(p.executionId, { stepId: p.stepId, percent: p.percent, message: p.message });
  }
  if (step && step.map && p.items) step.map = { ...step.map, ...p.items };
  // A worker reports on a dispatched step (its "started" announcement, then progress): it runs.
  if (step && step.status === "dispatched" && (p.attempt === undefined || p.attempt === step.attempts || step.map)) step.status = "running";
  if (state.selected?.id === p.executionId) renderDetail();
  renderList();
}

let events = null;

function connectEvents() {
  events?.close();
  const source = new EventSource(apiToken ? `/v1/events?access_token=${encodeURIComponent(apiToken)}` : "/v1/events");
  events = source;
  const live = $("live");
  source.addEventListener("ready", () => {
    live.textContent = "live updates: on";
    live.className = "pill ok";
  });
  source.addEventListener("exec", (m) => onExec(JSON.parse(m.data)));
  source.addEventListener("progress", (m) => onProgress(JSON.parse(m.data)));
  // EventSource reconnects by itself after a network error; just say so meanwhile. After an
  // HTTP error (401 without a valid token) it gives up: CLOSED.
  source.onerror = () => {
    const closed = source.readyState === EventSource.CLOSED;
    live.textContent = closed ? "live updates: off" : "live updates: reconnecting…";
    live.className = "pill bad";
  };
}

// ---- start form, health, boot --------------------------------------------------------

async function loadFlows() {
  try {
    const { flows } = await api("/v1/flows");
    const latest = new Map();
    for (const f of flows) if (!latest.has(f.flowId) || latest.get(f.flowId).version < f.version) latest.set(f.flowId, f);
    const picked = $("flow").value;
    $("flow").replaceChildren(...[...latest.values()].map((f) => el("option", { value: f.flowId }, `${f.flowId} (v${f.version})`)));
    state.flowExamples = new Map([...latest.values()].map((f) => [f.flowId, f.example]));
    // Keep the user's pick (and what they typed) across the periodic reload.
    if (picked && latest.has(picked)) $("flow").value = picked;
    else showExample();
  } catch (err) {
    $("start-result").textContent = `Cannot list flows: ${err.message}`;
  }
}

/** The picked flow's `example:` input, or {} when its file gives none: the form never shows another flow's input. */
function showExample() {
  const example = state.flowExamples.get($("flow").value);
  $("input").value = JSON.stringify(example ?? {}, null, 2);
}

async function startFlow(event) {
  event.preventDefault();
  const out = $("start-result");
  let input;
  try {
    input = JSON.parse($("input").value || "{}");
  } catch (err) {
    out.textContent = `Input is not valid JSON: ${err.message}`;
    return;
  }
  try {
    const { executionId } = await api(`/v1/flows/${encodeURIComponent($("flow").value)}/executions`, {
      method: "POST",
      body: JSON.stringify({ input }),
    });
    out.textContent = `Started ${executionId}`;
    await refreshList();
    await select(executionId);
  } catch (err) {
    out.textContent = err.message;
  }
}

async function checkHealth() {
  const pill = $("health");
  try {
    // Ready means NATS, the engine and its database answer; /healthz only says the gateway process is up.
    await api("/readyz");
    pill.textContent = "engine: up";
    pill.className = "pill ok";
  } catch (err) {
    pill.textContent = "engine: down";
    pill.title = err.message;
    pill.className = "pill bad";
  }
}

// ---- operations: worker pools, queue depth over time, dead letters ----------------------

const OPS_MS = 3000;
const HISTORY_POINTS = 100; // 5 minutes at one sample every 3 s
const depthHistory = new Map(); // "<region>/<handler>" → [depth, …], oldest first

/**
 * A pool's load is its tasks running and waiting, read from the same queue snapshot as the queue
 * panel and `flowmonkey queues` (a worker's own in-flight count spans every handler it serves,
 * so it cannot say which pool is busy). The bar is running tasks over the slots of the workers
 * that serve the pool.
 */
async function refreshPools(queueRead) {
  try {
    // A failed queue read leaves the load column blank here; the queue panel says why.
    const [{ workers }, queueReply] = await Promise.all([api("/v1/workers"), queueRead.catch(() => undefined)]);
    const pools = new Map();
    for (const w of workers) {
      for (const handler of w.handlers) {
        const key = `${w.region}/${handler}`;
        const p = pools.get(key) ?? { region: w.region, handler, workers: 0, slots: 0, running: 0, waiting: 0 };
        p.workers++;
        p.slots += w.concurrency;
        pools.set(key, p);
      }
    }
    for (const q of queueReply?.queues ?? []) {
      const p = pools.get(`${q.region}/${q.handler}`);
      if (!p) continue;
      p.running += q.ackPending;
      p.waiting += q.pending;
    }
    const load = (p) =>
      queueReply
        ? [bar((100 * p.running) / Math.max(1, p.slots)), el("span", { class: "hint" }, `${p.running} running · ${p.waiting} waiting`)]
        : [el("span", { class: "hint" }, "queues unavailable")];
    const rows = [...pools.values()]
      .sort((a, b) => a.region.localeCompare(b.region) || a.handler.localeCompare(b.handler))
      .map((p) => el("tr", { "data-pool": `${p.region}/${p.handler}` }, el("td", {}, p.region), el("td", { class: "mono" }, p.handler), el("td", {}, p.workers), el("td", { class: "load" }, ...load(p))));
    $("pools").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: "4", class: "hint" }, "no workers are registered"))]));
    $("pools-error").textContent = "";
  } catch (err) {
    $("pools-error").textContent = `Cannot list workers: ${err.message}`;
  }
}

function sparkline(values) {
  const max = Math.max(1, ...values);
  const points = values.map((v, i) => `${(i / Math.max(1, HISTORY_POINTS - 1)) * 100},${30 - (v / max) * 28}`).join(" ");
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 100 32");
  svg.setAttribute("preserveAspectRatio", "none");
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", points);
  svg.append(line);
  return svg;
}

async function refreshQueues(queueRead) {
  try {
    const { queues, regions = [] } = await queueRead;
    const lanes = new Map();
    for (const q of queues) {
      // A handler's capability-qualified pools are queues of their own: `<region>/<handler> [gpu]`.
      const caps = q.capabilities ?? [];
      const key = caps.length ? `${q.region}/${q.handler} [${caps.join(",")}]` : `${q.region}/${q.handler}`;
      const lane = lanes.get(key) ?? { depth: 0, paused: false };
      lane.depth += q.pending + q.ackPending;
      lane.paused ||= q.paused;
      lanes.set(key, lane);
    }
    for (const [key, lane] of lanes) {
      const history = depthHistory.get(key) ?? [];
      history.push(lane.depth);
      if (history.length > HISTORY_POINTS) history.shift();
      depthHistory.set(key, history);
    }
    const rows = [...lanes.keys()].sort().map((key) => {
      const lane = lanes.get(key);
      return el("div", { class: `lane${lane.paused ? " paused" : ""}`, "data-lane": key }, el("span", { class: "mono" }, lane.paused ? `${key} (paused)` : key), sparkline(depthHistory.get(key)), el("span", { class: "depth" }, lane.depth));
    });
    // A region whose domain did not answer (its link is down) has no rows: say so instead of looking drained.
    const unreachable = regions.filter((r) => !r.reachable).map((r) => el("p", { class: "hint" }, `${r.region} (domain ${r.domain}): unreachable`));
    $("queues").replaceChildren(...(rows.length ? rows : [el("p", { class: "hint" }, "no task queues yet")]), ...unreachable);
    $("queues-error").textContent = "";
  } catch (err) {
    $("queues-error").textContent = `Cannot read queues: ${err.message}`;
  }
}

async function refreshDlq() {
  try {
    const { deadTasks } = await api("/v1/dlq?limit=20");
    const rows = deadTasks.map((d) =>
      el(
        "tr",
        {},
        el("td", { class: "mono", title: d.id }, short(d.id)),
        el("td", { class: "mono" }, `${d.region}/${d.handler}`),
        el("td", {}, d.reason),
        el("td", { class: "hint" }, d.lastError ? `${d.lastError.code}: ${d.lastError.message}` : ""),
        el("td", {}, el("button", { type: "button", class: "secondary replay", onclick: () => replay(d.id) }, "Replay")),
      ),
    );
    $("dlq").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: "5", class: "hint" }, "no dead letters waiting for a decision"))]));
    $("dlq-error").textContent = "";
  } catch (err) {
    $("dlq-error").textContent = `Cannot list dead letters: ${err.message}`;
  }
}

// ---- schedules ---------------------------------------------------------------------------

const every = (ms) => (ms % 3_600_000 === 0 ? `every ${ms / 3_600_000} h` : ms % 60_000 === 0 ? `every ${ms / 60_000} min` : ms % 1000 === 0 ? `every ${ms / 1000} s` : `every ${ms} ms`);

/** What the schedule's last tick did: the execution it started (a link), or why it started none. */
function lastTick(tick) {
  if (!tick) return el("span", { class: "hint" }, "no tick yet");
  const when = time(tick.tickAt);
  if (tick.executionId) {
    const link = el("a", { href: "#", class: "mono", onclick: (ev) => (ev.preventDefault(), select(tick.executionId, { reveal: true })) }, short(tick.executionId));
    return el("span", { "data-action": tick.action }, `${when} ${tick.action} `, link, tick.missedTicks ? ` (+${tick.missedTicks} missed)` : "");
  }
  return el("span", { "data-action": tick.action, title: tick.note ?? "" }, `${when} ${tick.action}`);
}

async function refreshSchedules() {
  try {
    const { schedules } = await api("/v1/schedules");
    const rows = schedules.map((s) =>
      el(
        "tr",
        { "data-schedule": s.scheduleId, class: s.paused ? "paused" : "" },
        el("td", { class: "mono" }, s.scheduleId, s.source === "flow" ? el("span", { class: "hint" }, " (flow file)") : ""),
        el("td", {}, s.flowId),
        el("td", { class: "mono" }, s.cron ? `${s.cron}${s.timezone ? ` ${s.timezone}` : ""}` : every(s.everyMs)),
        el("td", {}, s.paused ? el("span", { class: "status paused" }, "paused") : time(s.nextFireAt)),
        el("td", {}, lastTick(s.lastTick)),
        el("td", {}, el("button", { type: "button", class: "secondary toggle", onclick: () => toggleSchedule(s) }, s.paused ? "Resume" : "Pause")),
      ),
    );
    $("schedules").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: "6", class: "hint" }, "no schedules (flowmonkey schedules put, or schedules: in a flow file)"))]));
    $("schedules-error").textContent = "";
  } catch (err) {
    $("schedules-error").textContent = `Cannot list schedules: ${err.message}`;
  }
}

async function toggleSchedule(s) {
  try {
    await api(`/v1/schedules/${encodeURIComponent(s.scheduleId)}/${s.paused ? "resume" : "pause"}`, { method: "POST" });
  } catch (err) {
    $("schedules-error").textContent = `${s.paused ? "Resume" : "Pause"} failed: ${err.message}`;
    return;
  }
  await refreshSchedules();
}

async function replay(id) {
  try {
    const { refused } = await api("/v1/dlq/replay", { method: "POST", body: JSON.stringify({ ids: [id] }) });
    $("dlq-error").textContent = refused.length ? `Not replayed: ${refused[0].code}: ${refused[0].message}` : "";
  } catch (err) {
    $("dlq-error").textContent = `Replay failed: ${err.message}`;
  }
  await refreshDlq();
}

function refreshOps() {
  // One queue read per refresh: the pool and queue panels show the same moment.
  const queueRead = api("/v1/queues");
  return Promise.all([refreshPools(queueRead), refreshQueues(queueRead), refreshDlq(), refreshSchedules()]);
}

$("start-form").addEventListener("submit", startFlow);
$("flow").addEventListener("change", showExample);
$("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  apiToken = $("token").value.trim();
  sessionStorage.setItem(TOKEN_KEY, apiToken);
  $("token").value = "";
  $("token-form").hidden = true;
  connectEvents();
  void loadFlows();
  void refreshList();
  void refreshOps();
});
$("status-filter").addEventListener("change", refreshList);
$("cancel").addEventListener("click", async () => {
  if (!state.selected) return;
  try {
    await api(`/v1/executions/${encodeURIComponent(state.selected.id)}/cancel`, { method: "POST" });
    await select(state.selected.id);
  } catch (err) {
    $("detail-status").append(` — ${err.message}`);
  }
});

connectEvents();
void loadFlows();
void refreshList();
void checkHealth();
void refreshOps();
setInterval(refreshList, POLL_MS);
setInterval(refreshOps, OPS_MS);
setInterval(checkHealth, HEALTH_MS);
setInterval(loadFlows, 30_000);
