import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { startMesh } from "../support/mesh.js";
import { uniquePrefix, useNatsServer } from "../support/nats.js";

const nats = useNatsServer();
const dataDir = mkdtempSync(join(tmpdir(), "fm-pglite-"));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

describe("embedded PGlite (no DATABASE_URL)", () => {
  it("runs a flow to completion and keeps it across an engine restart", async () => {
    const prefix = uniquePrefix();
    const first = await startMesh({ natsUrl: nats.url, dataDir, prefix });
    let executionId: string;
    try {
      expect(first.engine.db.kind).toBe("pglite");
      await first.putFlow({ id: "hello", steps: [{ id: "a", handler: "echo", input: { v: "{% input.v * 2 %}" } }] });
      ({ executionId } = await first.api.start("hello", { input: { v: 21 } }));
      expect((await first.waitForStatus(executionId, "completed")).output).toEqual({ v: 42 });
    } finally {
      await first.close();
    }
    const second = await startMesh({ natsUrl: nats.url, dataDir, prefix });
    try {
      const view = await second.api.get(executionId);
      expect(view).toMatchObject({ status: "completed", output: { v: 42 } });
      const again = await second.api.start("hello", { input: { v: 1 } });
      expect((await second.waitForStatus(again.executionId, "completed")).output).toEqual({ v: 2 });
    } finally {
      await second.close();
    }
  });
});
