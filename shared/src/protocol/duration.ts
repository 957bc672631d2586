import { z } from "zod";

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const PERIOD = /^(\d{1,9})(ms|s|m|h|d)$/;
/** Ended executions are kept a week unless the operator or the flow says otherwise. */
export const DEFAULT_RETENTION = "7d";

const MAX_MS = 100 * 365 * UNIT_MS.d;

/**
 * A period written the way operators write one: `7d`, `36h`, `90m`, `30s`, `500ms`, or `0` /
 * `"forever"` for "keep forever". Validated here, kept as written (stored flow definitions are
 * parsed again when loaded); `periodMs` turns it into milliseconds.
 */
export const RetentionPeriod = z.union([
  z.literal(0),
  z.literal("0"),
  z.literal("forever"),
  z
    .string()
    .regex(PERIOD, 'must be a period such as "7d", "36h", "90m", "30s", or "forever"')
    .refine((p) => !PERIOD.test(p) || periodMs(p) <= MAX_MS, "must be at most 100 years"),
]);
export type RetentionPeriod = z.infer<typeof RetentionPeriod>;

/** Milliseconds of a valid period; 0 for "forever". */
export function periodMs(period: string | number): number {
  if (period === 0 || period === "0" || period === "forever") return 0;
  const m = typeof period === "string" ? PERIOD.exec(period) : null;
  if (!m) throw new TypeError(`not a period: ${period}`);
  return Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
}
