/**
 * Per-component CPU accounting from /proc (Linux): utime+stime of named processes (including the
 * PostgreSQL processes the caller names), sampled before and after a phase. Reported as % of one core over the
 * phase's wall time (200% = both cores of a 2-core machine). Elsewhere it reports nothing.
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import type pg from "pg";

export type CpuGroups = Record<string, number[]>;

export interface CpuSnapshot {
  at: number;
  ticks: Map<string, Map<number, number>>;
  machine?: { busy: number; total: number };
}

let clkTck: number | undefined;
function ticksPerSecond(): number {
  if (clkTck === undefined) {
    try {
      clkTck = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

/** utime+stime of one process in clock ticks, or undefined when it is gone. */
function processTicks(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(rest[11]) + Number(rest[12]);
  } catch {
    return undefined;
  }
}

/** Every process called `comm` (fallback when PostgreSQL's own process list is unavailable). */
export function pidsNamed(comm: string): number[] {
  const out: number[] = [];
  try {
    for (const entry of readdirSync("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        if (readFileSync(`/proc/${entry}/comm`, "utf8").trim() === comm) out.push(Number(entry));
      } catch {
        // exited meanwhile
      }
    }
  } catch {
    // no /proc
  }
  return out;
}

function machineTicks(): { busy: number; total: number } | undefined {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "";
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = (v[3] ?? 0) + (v[4] ?? 0);
    return { busy: total - idle, total };
  } catch {
    return undefined;
  }
}

export function snapshotCpu(groups: CpuGroups): CpuSnapshot {
  const ticks = new Map<string, Map<number, number>>();
  for (const [name, pids] of Object.entries(groups)) {
    const m = new Map<number, number>();
    for (const pid of pids) {
      const t = processTicks(pid);
      if (t !== undefined) m.set(pid, t);
    }
    ticks.set(name, m);
  }
  const machine = machineTicks();
  return { at: performance.now(), ticks, ...(machine ? { machine } : {}) };
}

/** CPU % of one core per group between two snapshots (processes started in between count from 0). */
export function cpuPercent(before: CpuSnapshot, after: CpuSnapshot): Record<string, number> {
  const seconds = (after.at - before.at) / 1000;
  const out: Record<string, number> = {};
  if (seconds <= 0) return out;
  const hz = ticksPerSecond();
  for (const [name, m] of after.ticks) {
    const prev = before.ticks.get(name) ?? new Map<number, number>();
    let delta = 0;
    for (const [pid, t] of m) delta += t - (prev.get(pid) ?? 0);
    out[name] = Math.round((delta / hz / seconds) * 100);
  }
  if (before.machine && after.machine) {
    const total = after.machine.total - before.machine.total;
    const busy = after.machine.busy - before.machine.busy;
    // /proc/stat counts all cores: busy/total is the machine's share; scale to % of one core.
    if (total > 0) {
      const machine = Math.round((busy / total) * 100 * (readCpuCount() || 1));
      const ours = Object.values(out).reduce((a, b) => a + b, 0);
      out["machine"] = machine;
      // Everything else on the box (other users' processes): a noisy neighbour skews every number.
      out["other"] = Math.max(0, machine - ours);
    }
  }
  return out;
}

function readCpuCount(): number {
  try {
    return readFileSync("/proc/stat", "utf8").split("\n").filter((l) => /^cpu\d+ /.test(l)).length;
  } catch {
    return 0;
  }
}

/** Every live descendant of `pid` (children, their children…), from the parent pids in /proc. */
export function descendantPids(pid: number): number[] {
  const parentOf = new Map<number, number>();
  try {
    for (const entry of readdirSync("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
        // After the parenthesised command name: state, then ppid.
        parentOf.set(Number(entry), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
      } catch {
        // exited meanwhile
      }
    }
  } catch {
    return [];
  }
  const out: number[] = [];
  const wanted = new Set([pid]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [child, parent] of parentOf) {
      if (wanted.has(parent) && !wanted.has(child)) {
        wanted.add(child);
        out.push(child);
        grew = true;
      }
    }
  }
  return out;
}

/**
 * The PostgreSQL processes that work for this run: backends of our database plus the server's
 * own background processes (WAL writer, checkpointer...). Other clients' backends (other test
 * runs on a shared server) are left out, so they show up as "other".
 */
export async function postgresPids(admin: pg.Client, dbName: string): Promise<number[]> {
  try {
    const res = await admin.query<{ pid: number }>(
      "SELECT pid FROM pg_stat_activity WHERE (datname = $1 OR backend_type <> 'client backend') AND pid <> pg_backend_pid()",
      [dbName],
    );
    return res.rows.map((r) => r.pid);
  } catch {
    return pidsNamed("postgres");
  }
}
