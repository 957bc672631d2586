import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { ERROR_CODE_LIST, ERROR_CODES, isErrorCode } from "../src/errors/codes.js";
import { FmError } from "../src/errors/fm-error.js";

const PROTOCOL_MD = fileURLToPath(new URL("../../docs/PROTOCOL.md", import.meta.url));

interface DocRow {
  code: string;
  httpStatus: number;
  retryable: boolean;
  meaning: string;
}

/** The rows of the table under "## Error codes": `| \`CODE\` | status | yes/no | meaning |`. */
function parseErrorTable(markdown: string): DocRow[] {
  const lines = markdown.split("\n");
  const start = lines.findIndex((l) => /^##\s+Error codes\s*$/.test(l));
  if (start < 0) throw new Error('docs/PROTOCOL.md has no "## Error codes" section');
  const section: string[] = [];
  for (const line of lines.slice(start + 1)) {
    if (/^##\s/.test(line)) break;
    section.push(line);
  }
  const rows = section.filter((l) => /^\|\s*`/.test(l));
  return rows.map((row) => {
    const cells = row.split("|").slice(1, -1).map((c) => c.trim());
    const [code, status, retryable, meaning] = cells;
    const m = /^`([A-Z0-9_]+)`$/.exec(code ?? "");
    if (!m || cells.length !== 4) throw new Error(`malformed error table row: ${row}`);
    if (!/^\d{3}$/.test(status!)) throw new Error(`bad HTTP status in row: ${row}`);
    if (retryable !== "yes" && retryable !== "no") throw new Error(`retryable must be yes or no in row: ${row}`);
    return { code: m[1]!, httpStatus: Number(status), retryable: retryable === "yes", meaning: meaning! };
  });
}

describe("parseErrorTable", () => {
  it("reads a well-formed table and stops at the next section", () => {
    const md = ["# x", "## Error codes", "", "| code | HTTP status | retryable | meaning |", "|---|---|---|---|", "| `A_B` | 404 | no | gone |", "| `C` | 503 | yes | later |", "## Next", "| `D` | 500 | yes | not in the section |"].join("\n");
    expect(parseErrorTable(md)).toEqual([
      { code: "A_B", httpStatus: 404, retryable: false, meaning: "gone" },
      { code: "C", httpStatus: 503, retryable: true, meaning: "later" },
    ]);
  });

  it("refuses a malformed row instead of skipping it", () => {
    expect(() => parseErrorTable("## Error codes\n| `A` | 4xx | no | bad |")).toThrow(/bad HTTP status/);
    expect(() => parseErrorTable("## Error codes\n| `A` | 400 | maybe | bad |")).toThrow(/yes or no/);
    expect(() => parseErrorTable("# nothing here")).toThrow(/no "## Error codes" section/);
  });
});

describe("error codes: codes.ts and docs/PROTOCOL.md agree", () => {
  const documented = parseErrorTable(readFileSync(PROTOCOL_MD, "utf8"));
  const documentedCodes = documented.map((r) => r.code);

  it("the docs list codes", () => {
    expect(documented.length).toBeGreaterThan(0);
  });

  it("every code in codes.ts is documented", () => {
    const missing = ERROR_CODE_LIST.filter((code) => !documentedCodes.includes(code));
    expect(missing, "add these codes to the table in docs/PROTOCOL.md").toEqual([]);
  });

  it("the docs list no code that no longer exists", () => {
    const stale = documentedCodes.filter((code) => !isErrorCode(code));
    expect(stale, "remove these codes from docs/PROTOCOL.md").toEqual([]);
  });

  it("each code is documented once", () => {
    const dupes = documentedCodes.filter((code, i) => documentedCodes.indexOf(code) !== i);
    expect(dupes).toEqual([]);
  });

  it("HTTP status and retryable flag match the table in codes.ts", () => {
    const mismatched = documented
      .filter((row) => isErrorCode(row.code))
      .filter((row) => {
        const actual = ERROR_CODES[row.code as keyof typeof ERROR_CODES];
        return actual.httpStatus !== row.httpStatus || actual.retryable !== row.retryable;
      })
      .map((row) => row.code);
    expect(mismatched).toEqual([]);
  });

  it("every documented code has a meaning", () => {
    expect(documented.filter((r) => r.meaning.length < 5).map((r) => r.code)).toEqual([]);
  });
});

describe("the code table itself", () => {
  it.each(ERROR_CODE_LIST)("%s has a sane HTTP status and is what FmError reports", (code) => {
    const entry = ERROR_CODES[code];
    expect(entry.httpStatus).toBeGreaterThanOrEqual(400);
    expect(entry.httpStatus).toBeLessThan(600);
    const err = new FmError(code, "m");
    expect(err.httpStatus).toBe(entry.httpStatus);
    expect(err.retryable).toBe(entry.retryable);
  });

  it("client errors (4xx) are never retryable", () => {
    const retryable4xx = ERROR_CODE_LIST.filter((c) => ERROR_CODES[c].httpStatus < 500 && ERROR_CODES[c].retryable);
    expect(retryable4xx).toEqual([]);
  });

  it("isErrorCode does not accept inherited properties", () => {
    expect(isErrorCode("toString")).toBe(false);
    expect(isErrorCode("__proto__")).toBe(false);
    expect(isErrorCode(42)).toBe(false);
  });
});
