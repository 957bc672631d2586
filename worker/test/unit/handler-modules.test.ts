/** `--handler-modules`: which exports are handlers, and what the worker serves with and without --handlers. */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadHandlerModules, selectHandlers } from "../../src/handler-modules.js";

const dir = mkdtempSync(join(tmpdir(), "fm-handler-modules-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, source: string) => {
  writeFileSync(join(dir, name), source);
  return join(dir, name);
};

describe("loadHandlerModules", () => {
  it("takes the default export (one or an array) and every named export that is a handler", async () => {
    const a = file("a.mjs", `export default [{ type: "one", execute: () => 1 }, { type: "two", execute: () => 2 }];\nexport const three = { type: "three", execute: () => 3 };\nexport const notAHandler = { type: "x" };\nexport const answer = 42;`);
    const handlers = await loadHandlerModules([a]);
    expect(handlers.map((h) => h.type).sort()).toEqual(["one", "three", "two"]);
  });

  it("refuses a module without handlers, one that does not load, and a type exported twice, naming the file", async () => {
    const none = file("none.mjs", "export const answer = 42;");
    const broken = file("broken.mjs", "export const = ;");
    const b1 = file("b1.mjs", `export const x = { type: "dup", execute: () => 1 };`);
    const b2 = file("b2.mjs", `export const y = { type: "dup", execute: () => 2 };`);
    await expect(loadHandlerModules([none])).rejects.toThrow(/none\.mjs exports no handler/);
    await expect(loadHandlerModules([broken])).rejects.toThrow(/broken\.mjs does not load/);
    await expect(loadHandlerModules([b1, b2])).rejects.toThrow(/dup is exported by .*b1\.mjs and .*b2\.mjs/);
  });
});

describe("selectHandlers", () => {
  const mine = { type: "mine", execute: () => 1 };
  it("serves the modules' handlers by default, else every built-in", () => {
    expect(selectHandlers(undefined, [mine])).toEqual([mine]);
    expect(selectHandlers(undefined, [])).toContain("echo");
  });
  it("serves exactly --handlers, built-ins and module handlers alike, and names what is unknown", () => {
    expect(selectHandlers(["echo", "mine"], [mine])).toEqual(["echo", mine]);
    expect(() => selectHandlers(["nosuch"], [mine])).toThrow(/no handler "nosuch" .*echo.*mine/);
  });
  it("refuses a module handler that takes a built-in's name", () => {
    expect(() => selectHandlers(undefined, [{ type: "echo", execute: () => 1 }])).toThrow(/echo is a built-in's/);
  });
});
