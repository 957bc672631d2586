import { FmError } from "../errors/fm-error.js";

/**
 * Deepest nesting of objects and arrays accepted from outside. PostgreSQL's jsonb parser
 * runs out of stack near 5,000 levels and JSON.stringify near 10,000; real payloads stay far
 * below both, and every value the engine stores nests a few levels deeper than it came in
 * (an output inside a step inside the steps document).
 */
export const MAX_JSON_DEPTH = 128;

/**
 * Deepest nesting of a task result as a whole. Larger than MAX_JSON_DEPTH: an output is built
 * from its step's input (an echo of a 128-level input sits a level deeper in its result), and
 * flows wrap values as they go; the bound still stops unbounded growth well short of the limits.
 */
export const MAX_RESULT_JSON_DEPTH = 2 * MAX_JSON_DEPTH;

/** Where a value holds something PostgreSQL (jsonb and text) cannot store, and what it is. */
export interface UnstorableSpot {
  /** `input.a[3].b` style, from the value's root; keys are made printable. */
  path: string;
  problem: string;
}

// A cheap screen run on every string: only one that holds a NUL or any surrogate is looked at closely.
const SUSPECT = /[\u0000\ud800-\udfff]/;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** What is wrong with one string, if anything: NUL (PostgreSQL refuses it in text and jsonb) or an unpaired UTF-16 surrogate. */
function textProblem(text: string): string | undefined {
  if (!SUSPECT.test(text)) return undefined;
  if (text.includes("\u0000")) return "contains \\u0000, which PostgreSQL cannot store";
  LONE_SURROGATE.lastIndex = 0;
  const lone = LONE_SURROGATE.exec(text);
  if (lone) return `contains an unpaired UTF-16 surrogate \\u${lone[0].charCodeAt(0).toString(16)}, which is not valid Unicode text`;
  return undefined;
}

const keyPath = (key: string) => (/^[A-Za-z_$][\w$]*$/.test(key) ? `.${key}` : `[${JSON.stringify(storableText(key))}]`);

/**
 * The first place in a parsed JSON value that PostgreSQL cannot store (NUL, lone surrogates,
 * in keys or strings) or that nests deeper than `maxDepth`; undefined when it is fine. One
 * walk over the value: recursion is bounded by `maxDepth`, so it cannot overflow the stack.
 */
export function findUnstorable(value: unknown, maxDepth = MAX_JSON_DEPTH): UnstorableSpot | undefined {
  const spot = walk(value, 0, maxDepth);
  if (!spot) return undefined;
  const path = spot.segments.reverse().join("").replace(/^\./, "");
  return { path: path === "" ? "(root)" : path, problem: spot.problem };
}

function walk(value: unknown, depth: number, maxDepth: number): { segments: string[]; problem: string } | undefined {
  if (typeof value === "string") {
    const problem = textProblem(value);
    return problem ? { segments: [], problem } : undefined;
  }
  if (typeof value !== "object" || value === null) return undefined;
  if (depth >= maxDepth) return { segments: [], problem: `nests deeper than ${maxDepth} levels` };
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = walk(value[i], depth + 1, maxDepth);
      if (found) return found.segments.push(`[${i}]`), found;
    }
    return undefined;
  }
  for (const key in value) {
    const keyProblem = textProblem(key);
    if (keyProblem) return { segments: [], problem: `has a key ${JSON.stringify(storableText(key))} that ${keyProblem}` };
    const found = walk((value as Record<string, unknown>)[key], depth + 1, maxDepth);
    if (found) return found.segments.push(keyPath(key)), found;
  }
  return undefined;
}

/** Throws UNSUPPORTED_JSON (400, not retryable) naming the first spot `findUnstorable` finds. */
export function assertStorable(value: unknown, what: string, maxDepth = MAX_JSON_DEPTH): void {
  const spot = findUnstorable(value, maxDepth);
  if (spot) throw unsupportedJson(what, spot);
}

export function unsupportedJson(what: string, spot: UnstorableSpot): FmError {
  return new FmError("UNSUPPORTED_JSON", `${what}: ${spot.path} ${spot.problem}`, { details: spot });
}

/**
 * Text made safe to store in a text or jsonb column, for records about bad input (rejections,
 * excerpts, reasons): NUL becomes the visible escape `\u0000`, an unpaired surrogate U+FFFD.
 */
export function storableText(text: string): string {
  if (!SUSPECT.test(text)) return text;
  return text.replace(/\u0000/g, "\\u0000").replace(LONE_SURROGATE, "\ufffd");
}
