import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import pg from "pg";
import { startNatsServer, type NatsServerHandle } from "@flowmonkey/shared/dev";
import { createTestDatabase, type TestDatabase } from "../support/postgres.js";
import { startMesh, type MeshSystem } from "./mesh.js";

/** What the single-mesh benches (map, soak, cost) share: a nats-server, a fresh database, a client on it, and one engine and one worker. */
export interface MeshRig {
  nats: NatsServerHandle;
  db: TestDatabase;
  /** A client on the bench's database (its statistics, WAL position, sizes). */
  sql: pg.Client;
  nc: NatsConnection;
  mesh: MeshSystem;
  /** Stops the mesh and the server and drops the database. */
  close(): Promise<void>;
}

export async function startMeshRig(driverName: string): Promise<MeshRig> {
  const nats = await startNatsServer();
  const db = await createTestDatabase();
  const sql = new pg.Client({ connectionString: db.url, connectionTimeoutMillis: 5_000 });
  await sql.connect();
  const nc = await connect({ servers: nats.url, name: driverName });
  const mesh = await startMesh(nc, nats.url, db.url, { prefix: "fm", concurrency: 256, templates: false });
  return {
    nats,
    db,
    sql,
    nc,
    mesh,
    async close() {
      await mesh.close();
      await nc.close();
      await sql.end();
      await db.drop();
      await nats.stop();
    },
  };
}
