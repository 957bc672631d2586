/**
 * Integration-suite preconditions, checked once before any test file runs:
 * `nats-server` on PATH, or FM_NATS_SERVER (each test file starts its own), and a reachable
 * PostgreSQL (each test file creates its own database). A missing piece stops
 * the run with a message saying how to provide it — never a silent skip.
 *
 * With FM_TEST_CONTAINERS=1 and Docker available, PostgreSQL runs in a container
 * for the duration of the run and TEST_DATABASE_URL points the workers at it.
 */
import { spawnSync } from "node:child_process";
import type { TestProject } from "vitest/node";
import { checkPostgres, redactUrl, adminDatabaseUrl, startPostgresContainer, type PostgresContainer } from "./support/postgres.js";

export default async function setup(_project: TestProject): Promise<() => Promise<void>> {
  const problems: string[] = [];

  let findNatsServer: ((bin?: string) => string | undefined) | undefined;
  let installHint = "";
  try {
    ({ findNatsServer, NATS_SERVER_INSTALL_HINT: installHint } = await import("@flowmonkey/shared/dev"));
  } catch (err) {
    problems.push(
      `@flowmonkey/shared/dev could not be loaded (${(err as Error).message}). Build first: \`npm run build\` (\`npm test\` does it).`,
    );
  }
  let natsServer: string | undefined;
  if (findNatsServer !== undefined) {
    const chosen = process.env["FM_NATS_SERVER"];
    natsServer = findNatsServer(chosen || undefined);
    if (natsServer === undefined) {
      problems.push(
        chosen ? `FM_NATS_SERVER=${chosen} is not an executable nats-server.` : `nats-server is not on PATH; the integration tests start their own servers. ${installHint}`,
      );
    }
  }

  let container: PostgresContainer | undefined;
  try {
    container = await startPostgresContainer();
    // Forked test workers inherit this environment.
    if (container !== undefined) process.env["TEST_DATABASE_URL"] = container.url;
    await checkPostgres();
  } catch (err) {
    problems.push((err as Error).message);
  }

  if (problems.length > 0) {
    await container?.stop();
    const text = ["", "Integration tests cannot run:", ...problems.map((p) => `  - ${p}`), ""].join("\n");
    throw new Error(text);
  }
  const version = natsServer === undefined ? "" : spawnSync(natsServer, ["--version"], { encoding: "utf8" }).stdout.trim();
  console.log(`integration setup: ${version || "nats-server"} (${natsServer}), PostgreSQL at ${redactUrl(adminDatabaseUrl())}`);

  return async () => {
    await container?.stop();
  };
}
