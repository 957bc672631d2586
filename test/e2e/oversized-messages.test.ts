/**
 * Issue 18, item 1: nothing the engine accepts may wedge its outbox. On a real nats-server with
 * a 256 KiB max_payload and real PostgreSQL: a step whose task would be over the limit fails with
 * PAYLOAD_TOO_LARGE before anything is queued, its sibling's task goes out once, and the engine
 * still times out another execution's attempt; a row that got into the outbox anyway (bypassing
 * the guard) is settled message by message; a cancel drops a stuck row's task.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { Msg } from "@nats-io/nats-core";
import { describe, expect, it } from "vitest";
import { ensureTaskPool } from "@flowmonkey/shared";
import { useMesh } from "../support/mesh.js";
import { useNatsServer } from "../support/nats.js";
import { useTestDatabase } from "../support/postgres.js";
import { waitFor } from "../support/wait.js";

const MAX_PAYLOAD = 256 * 1024;
const configDir = mkdtempSync(join(tmpdir(), "fm-ovs-"));
writeFileSync(join(configDir, "small.conf"), `max_payload: ${MAX_PAYLOAD}\n`);

const nats = useNatsServer({ configFile: join(configDir, "small.conf"), jetstream: true });
const pg = useTestDatabase();
const GRACE_MS = 300;

const mesh = useMesh(() => ({
  natsUrl: nats.url,
  databaseUrl: pg.url,
  workers: [{ handlers: ["echo"] }],
  engine: { taskDeadlineGraceMs: GRACE_MS, deadlineSweepIntervalMs: 100 },
}));

/** Core subscription that keeps every message it sees (tasks are also published on core subjects). */
function collect(subject: string): { messages: Msg[]; stop(): void } {
  const messages: Msg[] = [];
  const sub = mesh.nc.subscribe(subject, { callback: (err, msg) => void (err ? undefined : messages.push(msg)) });
  return { messages, stop: () => sub.unsubscribe() };
}

async function outboxRows(): Promise<number> {
  const { rows } = await mesh.engine.db.query<{ n: number }>("SELECT count(*)::int AS n FROM outbox");
  return rows[0]!.n;
}

async function attemptsOf(executionId: string) {
  const { rows } = await mesh.engine.db.query<{ step_id: string; attempt: number; status: string; code: string | null; worker_id: string | null }>(
    "SELECT step_id, attempt, status, error->>'code' AS code, worker_id FROM tasks WHERE execution_id = $1 ORDER BY step_id, attempt",
    [executionId],
  );
  return rows;
}

/** A "worker" of `handler` that takes one task and acknowledges it without ever answering (a frozen worker). */
async function freezeNextTask(handler: string, executionId: string): Promise<void> {
  const jsm = await jetstreamManager(mesh.nc);
  await ensureTaskPool(jsm, mesh.names, "us-east-1", handler, "normal", { ackWaitMs: 30_000 });
  const consumer = await jetstream(mesh.nc).consumers.get(mesh.names.streams.tasks, mesh.names.consumers.taskPool("us-east-1", handler, "normal"));
  const taken = await consumer.next({ expires: 5000 });
  expect(taken?.json<{ executionId: string }>().executionId).toBe(executionId);
  await taken!.ackAck();
}

describe("messages over the server's max_payload", () => {
  it("fails the oversized step with PAYLOAD_TOO_LARGE before commit; the sibling's task goes out once; timeouts keep working", async () => {
    // Another execution's attempt that a frozen worker holds: the engine must still time it out.
    await mesh.putFlow({ id: "frozen", steps: [{ id: "hang", handler: "frozen", input: {}, timeoutMs: 300 }] });
    const frozen = await mesh.api.start("frozen", { input: {} });
    await freezeNextTask("frozen", frozen.executionId);

    const tasks = collect(`${mesh.prefix}.tasks.>`);
    const events = collect(`${mesh.prefix}.exec.ovs.>`);
    try {
      // The issue's repro, scaled to this server: `big`'s input alone is over max_payload.
      await mesh.putFlow({
        id: "ovs",
        steps: [
          { id: "twin", handler: "echo", input: { v: "small" } },
          { id: "big", handler: "echo", dependsOn: [], input: { v: `{% $pad("", ${MAX_PAYLOAD + 1000}, "x") %}` } },
        ],
      });
      const started = await mesh.api.start("ovs", { input: {} });
      expect(started.created).toBe(true);
      const view = await mesh.waitForStatus(started.executionId, "failed");
      const big = view.steps.find((s) => s.stepId === "big")!;
      expect([big.status, big.error?.code, big.error?.retryable]).toEqual(["failed", "PAYLOAD_TOO_LARGE", false]);
      expect(big.error?.message).toMatch(/max_payload of 262144/);
      expect(view.error?.code).toBe("PAYLOAD_TOO_LARGE");
      // `twin` went out in the same transaction; the execution's failure may cancel it before its result is in.
      expect(["completed", "cancelled"]).toContain(view.steps.find((s) => s.stepId === "twin")?.status);
      expect((await attemptsOf(started.executionId)).filter((a) => a.step_id === "big").map((a) => [a.attempt, a.status, a.code, a.worker_id])).toEqual([
        [1, "failed", "PAYLOAD_TOO_LARGE", "engine"],
      ]);

      // Nothing is left to publish: the outbox is the engine's only publisher, so what was sent stays sent.
      await waitFor(async () => (await outboxRows()) === 0, { message: "an empty outbox" });
      const ofThis = tasks.messages.map((m) => m.json<{ executionId: string; stepId: string }>()).filter((t) => t.executionId === started.executionId);
      expect(ofThis.map((t) => t.stepId)).toEqual(["twin"]);
      const types = events.messages.map((m) => m.json<{ type: string; executionId: string }>()).filter((e) => e.executionId === started.executionId).map((e) => e.type);
      expect(types.filter((t) => t === "started")).toHaveLength(1);
      expect(types.filter((t) => t === "step.dispatched")).toHaveLength(2);

      // The deadline sweep was not held up: the frozen worker's attempt is timed out by the engine.
      const timedOut = await waitFor(async () => (await attemptsOf(frozen.executionId)).find((a) => a.status === "failed"), {
        timeoutMs: 10_000,
        message: "the frozen attempt timed out by the engine",
      });
      expect([timedOut.code, timedOut.worker_id]).toEqual(["TASK_TIMEOUT", "engine"]);
    } finally {
      tasks.stop();
      events.stop();
    }
  });

  it("offloads a context that would make the task too large instead of failing the step", async () => {
    // 200 KiB of context is under the engine's 256 KiB offload threshold, but with a 100 KiB input the task is not.
    await mesh.putFlow({ id: "ctxbig", steps: [{ id: "s", handler: "echo", input: { v: `{% $pad("", 100000, "y") %}` } }] });
    const started = await mesh.api.start("ctxbig", { input: {}, context: { blob: "z".repeat(200_000) } });
    const view = await mesh.waitForStatus(started.executionId, ["completed", "failed"]);
    expect([view.status, view.steps[0]?.status]).toEqual(["completed", "completed"]);
  });

  it("settles a row that bypassed the guard message by message: the event goes once, the task is dead-lettered and its step fails", async () => {
    await mesh.putFlow({ id: "frozen2", steps: [{ id: "hang", handler: "frozen2", input: {}, timeoutMs: 600_000 }] });
    const { executionId } = await mesh.api.start("frozen2", { input: {} });
    await freezeNextTask("frozen2", executionId);
    const probe = collect(`${mesh.prefix}.probe`);
    try {
      // What an older engine (or a server whose max_payload shrank) could leave behind.
      const oversizedTask = {
        taskId: `${executionId}/hang`,
        executionId,
        stepId: "hang",
        attempt: 1,
        handler: { type: "frozen2" },
        input: { v: "x".repeat(MAX_PAYLOAD) },
        metadata: { region: "us-east-1" },
      };
      await mesh.engine.db.query("INSERT INTO outbox (messages) VALUES ($1::jsonb)", [
        JSON.stringify([
          { subject: `${mesh.prefix}.probe`, body: { hello: 1 } },
          { subject: mesh.names.subjects.task("us-east-1", "frozen2", "normal"), msgId: `${executionId}/hang:1`, body: oversizedTask },
        ]),
      ]);
      const view = await mesh.waitForStatus(executionId, "failed");
      expect(view.steps[0]?.error?.code).toBe("PAYLOAD_TOO_LARGE");
      await waitFor(async () => (await outboxRows()) === 0, { message: "the row settled and deleted" });
      const { rows } = await mesh.engine.db.query<{ code: string; msg_id: string; tries: number; bytes: number; body: unknown }>(
        "SELECT code, msg_id, tries, bytes, body FROM outbox_dead_letters WHERE execution_id = $1",
        [executionId],
      );
      expect(rows.map((r) => [r.code, r.msg_id, r.tries, r.bytes > MAX_PAYLOAD, r.body])).toEqual([["PAYLOAD_TOO_LARGE", `${executionId}/hang:1`, 1, true, null]]);
      expect(probe.messages.map((m) => m.json())).toEqual([{ hello: 1 }]);
    } finally {
      probe.stop();
    }
  });

  it("drops the task of a cancelled execution from a row stuck on a publish that keeps failing", async () => {
    await mesh.putFlow({ id: "frozen3", steps: [{ id: "hang", handler: "frozen3", input: {}, timeoutMs: 600_000 }] });
    const { executionId } = await mesh.api.start("frozen3", { input: {} });
    await freezeNextTask("frozen3", executionId);
    // A subject no stream captures: every JetStream publish gets no responders (a region cut off), so the row is retried.
    const { rows } = await mesh.engine.db.query<{ id: number }>("INSERT INTO outbox (messages) VALUES ($1::jsonb) RETURNING id::int AS id", [
      JSON.stringify([
        {
          subject: `${mesh.prefix}-nowhere.tasks`,
          msgId: `${executionId}/hang:1`,
          body: { taskId: `${executionId}/hang`, executionId, stepId: "hang", attempt: 1, handler: { type: "frozen3" }, input: {}, metadata: { region: "us-east-1" } },
        },
      ]),
    ]);
    const id = rows[0]!.id;
    const triesOf = async () => (await mesh.engine.db.query<{ tries: number }>("SELECT tries FROM outbox WHERE id = $1", [id])).rows[0]?.tries;
    await waitFor(async () => ((await triesOf()) ?? 0) >= 2, { message: "the stuck row tried twice and kept" });

    await mesh.api.cancel(executionId);
    await waitFor(async () => (await triesOf()) === undefined, { message: "the cancelled execution's task dropped from the outbox" });
    const dead = await mesh.engine.db.query("SELECT 1 FROM outbox_dead_letters WHERE execution_id = $1", [executionId]);
    expect(dead.rows).toEqual([]);
  });
});
