/**
 * Integration-suite preconditions, checked once before any test file runs:
 * `nats-server` on PATH (each test file starts its own) and a reachable
 * PostgreSQL (each test file creates its own database). A missing piece stops
 * the run with a message saying how to provide it — never a silent skip.
 *
 * With FM_TEST_CONTAINERS=1 and Docker available, PostgreSQL runs in a container
 * for the duration of the run and TEST_DATABASE_URL points the workers at it.
 */
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
  if (findNatsServer !== undefined) {
    const bin = findNatsServer();
    if (bin === undefined) problems.push(`nats-server is not on PATH; the integration tests start their own servers. ${installHint}`);
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
  console.log(`integration setup: nats-server on PATH, PostgreSQL at ${redactUrl(adminDatabaseUrl())}`);

  return async () => {
    await container?.stop();
  };
}
