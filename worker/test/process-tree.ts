/** A process and all its descendants, read from /proc (Linux): a sandbox is a chain of tools ending in node. */
import { readdirSync, readFileSync } from "node:fs";

function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return undefined; // gone
  }
}

export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const parent = parentOf(Number(name));
    if (parent !== undefined) children.set(parent, [...(children.get(parent) ?? []), Number(name)]);
  }
  const tree: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.shift()!;
    tree.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return tree;
}

/** The node process at the end of a sandbox's launcher chain: the deepest process of its tree. */
export function sandboxNodePid(root: number): number {
  return processTree(root).at(-1)!;
}

/** Whether a process exists (signal 0). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Pids a test started, SIGKILLed after each test whatever its verdict (register with
 * `afterEach(killStarted)`), so nothing a test starts keeps running.
 */
export const startedPids: number[] = [];
export function killStarted(): void {
  for (const pid of startedPids.splice(0)) if (isAlive(pid)) process.kill(pid, "SIGKILL");
}
