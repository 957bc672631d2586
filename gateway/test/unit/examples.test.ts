import { readdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildGraph, loadFlowFile } from "@flowmonkey/shared";
import { describe, expect, it } from "vitest";

const dir = fileURLToPath(new URL("../../../examples/flows/", import.meta.url));
const files = readdirSync(dir).filter((f) => /\.(ya?ml|json)$/.test(f));

describe("examples/flows", () => {
  it("has the examples the README and `flowmonkey dev` point at", () => {
    expect(files).toEqual(expect.arrayContaining(["hello.yaml", "order-fanout.yaml"]));
  });

  it.each(files)("%s is a valid flow definition (schema, ids, graph)", async (file) => {
    const definition = await loadFlowFile(join(dir, file));
    expect(`${definition.id}.yaml`).toBe(file);
    expect(buildGraph(definition).order.length).toBe(definition.steps.length);
  });

  it("order-fanout runs charge and reserve in parallel and notify after both, in two regions", async () => {
    const definition = await loadFlowFile(join(dir, "order-fanout.yaml"));
    const graph = buildGraph(definition);
    expect(graph.dependsOn.get("charge")).toEqual(["validate"]);
    expect(graph.dependsOn.get("reserve")).toEqual(["validate"]);
    expect([...(graph.dependsOn.get("notify") ?? [])].sort()).toEqual(["charge", "reserve"]);
    expect(definition.steps.find((s) => s.id === "notify")?.when).toMatch(/^\{%/);
    expect(definition.steps.some((s) => s.region === "eu-west-1")).toBe(true);
  });
});
