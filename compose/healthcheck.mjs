// Container healthchecks (compose/Dockerfile): `node healthcheck.mjs engine|worker|gateway`.
// Exit 0 when the process does its job, 1 otherwise, with one line saying why.
//   engine:  its fm.api service answers a NATS service ping ($SRV.PING.<service>)
//   worker:  this container's worker has a live entry in KV fm_workers (the hub's, via FM_HUB_DOMAIN)
//   gateway: GET /healthz answers 200 (NATS connected and the engine answering)
import { hostname } from "node:os";

const kind = process.argv[2];
const env = process.env;

async function natsConnection() {
  const { connect } = await import("@nats-io/transport-node");
  return connect({
    servers: (env.NATS_URL ?? "nats://127.0.0.1:4222").split(","),
    ...(env.NATS_USER ? { user: env.NATS_USER, pass: env.NATS_PASSWORD ?? "" } : {}),
    timeout: 3000,
  });
}

async function check() {
  if (kind === "gateway") {
    const res = await fetch(`http://127.0.0.1:${env.FM_HTTP_PORT ?? "8080"}/healthz`, { signal: AbortSignal.timeout(4000) });
    if (!res.ok) throw new Error(`/healthz answered ${res.status}`);
    return;
  }
  const { createNames } = await import("@flowmonkey/shared");
  const names = createNames(env.FM_PREFIX ?? "fm");
  const nc = await natsConnection();
  try {
    if (kind === "engine") {
      await nc.request(`$SRV.PING.${names.serviceName}`, "", { timeout: 3000 });
      return;
    }
    if (kind === "worker") {
      const { jetstream } = await import("@nats-io/jetstream");
      const { Kvm } = await import("@nats-io/kv");
      const kv = await new Kvm(jetstream(nc, env.FM_HUB_DOMAIN ? { domain: env.FM_HUB_DOMAIN } : {})).open(names.buckets.workers);
      for await (const key of await kv.keys()) {
        const entry = await kv.get(key);
        if (entry?.value.length && JSON.parse(entry.string()).host === hostname()) return;
      }
      throw new Error(`no live entry for host ${hostname()} in ${names.buckets.workers}`);
    }
    throw new Error(`unknown healthcheck ${kind}; use engine, worker or gateway`);
  } finally {
    await nc.close();
  }
}

check().then(
  () => process.exit(0),
  (err) => {
    console.error(`unhealthy: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
