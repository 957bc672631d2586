/**
 * The layout's rules (STYLE.md §4 "Rules"), checked on the source text with plain fs walking:
 * package boundaries, one home for subjects, SQL in the store, a pure scheduler, no console
 * in library code. Files over 300 lines are reported, not failed.
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { consoleCalls, importsOf, subjectSpellings } from "./support/source-scan.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const WORKSPACES = ["shared", "engine", "worker", "gateway"] as const;
type Workspace = (typeof WORKSPACES)[number];

// ---------------------------------------------------------------------------------------------
// The source tree
// ---------------------------------------------------------------------------------------------

interface SourceFile {
  /** Repository-relative, with forward slashes. */
  path: string;
  abs: string;
  workspace: Workspace;
  text: string;
}

function walk(dir: string): string[] {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return []; // a workspace without src yet
  }
  return entries.flatMap((e) => {
    if (e.name === "node_modules" || e.name === "dist") return [];
    const full = join(dir, e.name);
    if (e.isDirectory()) return walk(full);
    return /\.(ts|mts|cts|js|mjs|cjs)$/.test(e.name) && !e.name.endsWith(".d.ts") ? [full] : [];
  });
}

const FILES: SourceFile[] = WORKSPACES.flatMap((workspace) =>
  walk(join(ROOT, workspace, "src")).map((abs) => ({
    path: relative(ROOT, abs).split(sep).join("/"),
    abs,
    workspace,
    text: readFileSync(abs, "utf8"),
  })),
);

const filesOf = (...workspaces: Workspace[]) => FILES.filter((f) => workspaces.includes(f.workspace));
const under = (prefix: string) => (f: SourceFile) => f.path.startsWith(prefix);

/** Which workspace a relative import lands in, or undefined when it leaves every workspace. */
function workspaceOfRelative(file: SourceFile, spec: string): string | undefined {
  const target = relative(ROOT, resolve(dirname(file.abs), spec)).split(sep);
  return target[0];
}

function violations(files: SourceFile[], check: (f: SourceFile) => string[]): string[] {
  return files.flatMap((f) => check(f).map((v) => `${f.path}: ${v}`));
}

// ---------------------------------------------------------------------------------------------
// The rules
// ---------------------------------------------------------------------------------------------

describe("the scanners themselves", () => {
  it("find every kind of import, and none in comments or strings", () => {
    const source = [
      `import { a } from "./a.js";`,
      `import type { B } from '@flowmonkey/engine';`,
      `import {\n  c,\n  d,\n} from "pg";`,
      `export * from "../../worker/src/x.js";`,
      `import "node:fs";`,
      `const m = await import("@nats-io/jetstream");`,
      `// import { z } from "commented-out";`,
      `/* import { y } from "block-comment"; */`,
      `const s = "import { q } from 'in-a-string'";`,
      `const r = Array.from(items);`,
    ].join("\n");
    expect(importsOf(source).sort()).toEqual(
      ["./a.js", "@flowmonkey/engine", "pg", "../../worker/src/x.js", "node:fs", "@nats-io/jetstream"].sort(),
    );
  });

  it("find hand-spelled subjects in strings and templates, but not in comments or regexes", () => {
    const source = [
      "// fm.tasks.eu.echo.normal is documented here",
      "/** `fm.flows.start.<flowId>` */",
      'const a = "fm.flows.start.hello";',
      "const b = `${prefix}.tasks.${region}`;",
      "const c = `${p}.results`;",
      'const d = x.replace(/\\./g, "_");',
      'const e = /"fm\\.tasks/;',
      "const f = 'plain text';",
      "const g = `nested ${`${p}.exec.${id}`}`;",
      "const h = `${ok ? 'fm.api.flows.put' : ''}`;",
      "const i = `a/b` + 'c.d';",
    ].join("\n");
    const found = subjectSpellings(source);
    expect(found.map((f) => f.split(":")[0])).toEqual(["line 3", "line 4", "line 5", "line 9", "line 10"]);
  });

  it("find console calls in code only", () => {
    const source = ["// console.log('in a comment')", 'const s = "console.log";', "console.log('real');", "  console .error(e);", "myconsole.log(1);"].join(
      "\n",
    );
    expect(consoleCalls(source)).toEqual(["line 3", "line 4"]);
  });

  it("see the source tree, and what the rules look for in it", () => {
    for (const ws of ["shared", "engine"] as const) expect(filesOf(ws).length, ws).toBeGreaterThan(5);
    const file = (path: string) => {
      const found = FILES.find((f) => f.path === path);
      expect(found, path).toBeDefined();
      return found!;
    };
    // The excepted file is exactly where the subject detector fires.
    expect(subjectSpellings(file("shared/src/protocol/subjects.ts").text).length).toBeGreaterThan(10);
    // The store really imports a database driver, and engine files really import shared.
    expect(FILES.filter(under("engine/src/store/")).flatMap((f) => importsOf(f.text))).toEqual(
      expect.arrayContaining(["pg"]),
    );
    expect(importsOf(file("engine/src/engine.ts").text)).toContain("@flowmonkey/shared");
  });
});

describe("package boundaries", () => {
  it("engine, worker and gateway never import each other, by name or by relative path", () => {
    const found = violations(filesOf("engine", "worker", "gateway"), (f) =>
      importsOf(f.text).flatMap((spec) => {
        const byName = /^@flowmonkey\/(engine|worker|gateway)(\/|$)/.exec(spec);
        if (byName && byName[1] !== f.workspace) return [`imports ${spec}`];
        if (byName) return [`imports its own package by name (${spec}); use a relative path`];
        if (spec.startsWith(".")) {
          const target = workspaceOfRelative(f, spec);
          if (target !== f.workspace) return [`imports ${spec}, which lands in ${target}/`];
        }
        return [];
      }),
    );
    expect(found).toEqual([]);
  });

  it("shared imports no other workspace", () => {
    const found = violations(filesOf("shared"), (f) =>
      importsOf(f.text).flatMap((spec) => {
        if (/^@flowmonkey\//.test(spec)) return [`imports ${spec}`];
        if (spec.startsWith(".") && workspaceOfRelative(f, spec) !== "shared") return [`imports ${spec}, outside shared/`];
        return [];
      }),
    );
    expect(found).toEqual([]);
  });
});

describe("subjects in one file", () => {
  it("no src file except shared/src/protocol/subjects.ts spells a subject", () => {
    const found = violations(
      FILES.filter((f) => f.path !== "shared/src/protocol/subjects.ts"),
      (f) => subjectSpellings(f.text),
    );
    expect(found).toEqual([]);
  });
});

describe("SQL in one folder", () => {
  it("only engine/src/store/** imports pg or PGlite", () => {
    const found = violations(
      FILES.filter((f) => !f.path.startsWith("engine/src/store/")),
      (f) => importsOf(f.text).filter((spec) => /^(pg|pg-[\w-]+|@electric-sql\/pglite)(\/|$)/.test(spec)),
    );
    expect(found).toEqual([]);
  });
});

describe("pure scheduler", () => {
  const IO_MODULES = /^(@nats-io\/|pg$|pg\/|@electric-sql\/|(node:)?(fs|fs\/promises|net|http|https|http2|dgram|tls|child_process|worker_threads|cluster|dns)$|pino)/;

  it("engine/src/scheduler/** imports nothing that does I/O", () => {
    const scheduler = FILES.filter(under("engine/src/scheduler/"));
    expect(scheduler.length).toBeGreaterThan(0);
    const found = violations(scheduler, (f) =>
      importsOf(f.text).flatMap((spec) => {
        if (IO_MODULES.test(spec)) return [`imports ${spec}`];
        if (spec.startsWith(".")) {
          const target = relative(ROOT, resolve(dirname(f.abs), spec)).split(sep).join("/");
          if (!target.startsWith("engine/src/scheduler/")) return [`imports ${spec} (${target}), outside the scheduler`];
        }
        return [];
      }),
    );
    expect(found).toEqual([]);
  });
});

describe("logging", () => {
  const EXCEPTED = [/^gateway\/src\/cli\/output\.ts$/, /^shared\/src\/dev\//, /^gateway\/src\/cli\/dev\//];

  it("no console.* in library code (the CLI's output module and dev tooling excepted)", () => {
    const found = violations(
      FILES.filter((f) => !EXCEPTED.some((re) => re.test(f.path))),
      (f) => consoleCalls(f.text),
    );
    expect(found).toEqual([]);
  });
});

describe("file size", () => {
  it("reports src files over 300 lines (a report, not a failure)", () => {
    const oversized = FILES.map((f) => ({ path: f.path, lines: f.text.split("\n").length - (f.text.endsWith("\n") ? 1 : 0) }))
      .filter((f) => f.lines > 300)
      .sort((a, b) => b.lines - a.lines);
    if (oversized.length) {
      console.log(`src files over 300 lines:\n${oversized.map((f) => `  ${String(f.lines).padStart(5)}  ${f.path}`).join("\n")}`);
    }
    expect(oversized.every((f) => f.lines > 300)).toBe(true);
  });
});
