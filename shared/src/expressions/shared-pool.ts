import type { Logger } from "../runtime/log.js";
import type { ExpressionBounds } from "./bounds.js";
import { ExpressionPool } from "./expression-pool.js";

/**
 * One expression pool per process: it is sized for the machine (warm processes), not per
 * component. The engine and the worker lease it for their lifetime; the last release closes
 * it. Code that evaluates without a lease (a unit test, a tool) gets a default pool that closes
 * itself after a second idle, so it never keeps such a process from exiting.
 */
const DEFAULT_POOL_IDLE_CLOSE_MS = 1000;
let current: { pool: ExpressionPool; leases: number } | undefined;

export interface ExpressionPoolLease {
  readonly pool: ExpressionPool;
  /** Idempotent; closes the pool when it was the last lease. */
  release(): Promise<void>;
}

export function leaseExpressionPool(bounds: Partial<ExpressionBounds> = {}, log?: Logger): ExpressionPoolLease {
  if (current && (current.leases === 0 || current.pool.closed)) {
    // Only an unleased default pool exists: whoever configures the process replaces it.
    void current.pool.close();
    current = undefined;
  }
  if (!current) current = { pool: new ExpressionPool(bounds, log), leases: 0 };
  else if (log && Object.entries(bounds).some(([k, v]) => v !== undefined && current!.pool.bounds[k as keyof ExpressionBounds] !== v)) {
    log.warn({ requested: bounds, inUse: current.pool.bounds }, "the process's expression pool is already running with other bounds; using it as it is");
  }
  const held = current;
  held.leases++;
  let released = false;
  return {
    pool: held.pool,
    async release() {
      if (released) return;
      released = true;
      if (--held.leases > 0) return;
      if (current === held) current = undefined;
      await held.pool.close();
    },
  };
}

/** The process's pool: the leased one, or a default one made on first use. */
export function expressionPool(): ExpressionPool {
  if (!current || current.pool.closed) current = { pool: new ExpressionPool({}, undefined, { idleCloseMs: DEFAULT_POOL_IDLE_CLOSE_MS }), leases: 0 };
  return current.pool;
}
