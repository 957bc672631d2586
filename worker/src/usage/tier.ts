import { availableParallelism, totalmem } from "node:os";

export const TIERS = ["small", "medium", "large"] as const;
export type Tier = (typeof TIERS)[number];

/** Upper bounds of each tier (a pool over both of medium's is large). */
const BOUNDS: ReadonlyArray<{ tier: Tier; memoryMb: number; cpus: number }> = [
  { tier: "small", memoryMb: 1024, cpus: 1 },
  { tier: "medium", memoryMb: 4096, cpus: 2 },
];

/**
 * A pool's size class for usage records: the smallest tier whose memory and CPU bounds hold the
 * worker's configured resources (the machine's own when none are configured).
 */
export function tierOf(resources: { memoryMb?: number | undefined; cpus?: number | undefined } = {}): Tier {
  const memoryMb = resources.memoryMb ?? Math.round(totalmem() / 2 ** 20);
  const cpus = resources.cpus ?? availableParallelism();
  return BOUNDS.find((b) => memoryMb <= b.memoryMb && cpus <= b.cpus)?.tier ?? "large";
}
