/** A cap on how fast tasks of a lane are published: `<region>/<handler>`, either part may be `*`. */
export interface RateRule {
  region: string;
  handler: string;
  perSecond: number;
}

export interface RateView {
  /** `<region>/<handler>`, or `<tenant>@<region>/<handler>` for a tenant's own rate. */
  key: string;
  perSecond: number;
  /** When the last task held by this key goes, if that is later than now (a backlog). */
  heldUntil?: string;
}

/** `us-east-1/http-request=50,*\/video-encode=5` → rules; throws with the bad item named. */
export function parseRateRules(spec: string): RateRule[] {
  return spec
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "")
    .map((item) => {
      const match = /^([a-z0-9][a-z0-9-]*|\*)\/([A-Za-z0-9_-]+|\*)=(\d+(?:\.\d+)?)$/.exec(item);
      if (!match || Number(match[3]) <= 0) throw new Error(`"${item}" is not <region>/<handler>=<tasks per second> (either part may be *)`);
      return { region: match[1]!, handler: match[2]!, perSecond: Number(match[3]) };
    });
}

/**
 * Tasks/s limits per lane and per tenant, in this engine replica's memory (with N replicas
 * sharing the work, each keeps the rate: the mesh-wide rate is up to N times it). A limit is a
 * schedule, not a refusal: each task reserves the next free slot and is held until then, so
 * a burst of starts becomes a steady stream of tasks and nothing is dropped. Up to one
 * second's worth may go at once.
 */
export class RateLimits {
  readonly #rules: RateRule[];
  readonly #tenantPerSecond: number;
  readonly #now: () => number;
  /** key → theoretical time the next task may go (GCRA). */
  readonly #next = new Map<string, number>();
  readonly #rates = new Map<string, number>();

  constructor(options: { rules?: RateRule[]; tenantPerSecond?: number } = {}, now: () => number = Date.now) {
    this.#rules = options.rules ?? [];
    this.#tenantPerSecond = options.tenantPerSecond ?? 0;
    this.#now = now;
  }

  get active(): boolean {
    return this.#rules.length > 0 || this.#tenantPerSecond > 0;
  }

  /** The earliest time (≥ `earliest`) a task of this lane and tenant may be published; reserves it. */
  reserve(region: string, handler: string, tenantId: string | undefined, earliest: number): number {
    let at = earliest;
    const rule = this.#rules.find((r) => (r.region === "*" || r.region === region) && (r.handler === "*" || r.handler === handler));
    const lane = `${region}/${handler}`;
    const keys: Array<[string, number]> = [];
    if (rule) keys.push([lane, rule.perSecond]);
    if (tenantId !== undefined && this.#tenantPerSecond > 0) keys.push([`${tenantId}@${lane}`, this.#tenantPerSecond]);
    // Every limit that applies must allow it: the latest of their slots wins, then all are taken.
    for (const [key, perSecond] of keys) at = Math.max(at, this.#slot(key, perSecond));
    for (const [key, perSecond] of keys) {
      this.#rates.set(key, perSecond);
      this.#next.set(key, Math.max(this.#next.get(key) ?? 0, at) + 1000 / perSecond);
    }
    return at;
  }

  #slot(key: string, perSecond: number): number {
    // A burst of up to one second's worth goes at once.
    return (this.#next.get(key) ?? 0) - 1000 + 1000 / perSecond;
  }

  list(): RateView[] {
    const now = this.#now();
    const views: RateView[] = this.#rules.map((r) => ({ key: `${r.region}/${r.handler}`, perSecond: r.perSecond }));
    for (const [key, perSecond] of this.#rates) {
      // While backlogged, the last task reserved goes one second before the key's next mark.
      const lastAt = this.#next.get(key)! - 1000;
      const view = views.find((v) => v.key === key) ?? (views.push({ key, perSecond }), views[views.length - 1]!);
      if (lastAt > now) view.heldUntil = new Date(lastAt).toISOString();
    }
    return views;
  }
}
