/**
 * The hub's FM_ADVISORIES and FM_RESULTS source streams in the leaf domains. A source with no
 * position yet — its leaf stream did not exist when the hub stream was made (the region was
 * unreachable when the engine started), so its first attempt failed and is retried after a backoff
 * — must still deliver what the leaf stored before it connected, even when the hub stream has meanwhile
 * taken and acked messages of its own. nats-server 2.10.16+ starts such a source at the hub
 * stream's last message time unless the source has an explicit start (without one, on 2.15.3, the
 * leaf message below never arrives); 2.9 delivers it from the start either way.
 */
import { jetstream, jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNames, maxDeliveriesAdvisorySubject, provisionMesh, provisionRegion, regionTopology, serverAtLeast, serverVersionOf, SOURCE_POSITIONS_PERSISTED } from "@flowmonkey/shared";
import { ROLES, HUB_DOMAIN, HUB_REGION, startTopology, type Topology } from "../support/topology.js";
import { waitFor } from "../support/wait.js";

const EU = "eu-west-1";
const names = createNames("fm");
let topology: Topology;
let hub: NatsConnection;
let hubJsm: JetStreamManager;

beforeAll(async () => {
  topology = await startTopology([EU]);
  hub = await topology.connectAs(topology.hub, ROLES.engine);
  hubJsm = await jetstreamManager(hub);
}, 60_000);
afterAll(async () => {
  await topology?.stop();
});

/** Takes the messages of one engine consumer and acks them, until one of `until` was taken. */
async function takeUntil(stream: string, consumer: string, until: (data: string) => boolean, what: string): Promise<string[]> {
  const c = await jetstream(hub).consumers.get(stream, consumer);
  const taken: string[] = [];
  await waitFor(
    async () => {
      const msg = await c.next({ expires: 1000 });
      if (msg) {
        taken.push(msg.string());
        msg.ack();
      }
      return taken.some(until);
    },
    { timeoutMs: 40_000, intervalMs: 0, message: what },
  );
  return taken;
}

describe("a leaf stream the hub could not source at first", () => {
  it("is sourced from its first message once it exists, though the hub's stream has acked its own meanwhile", async () => {
    const topo = regionTopology({ hubDomain: HUB_DOMAIN, regionDomains: topology.regionDomains });
    // The hub's streams first, while the leaf's do not exist: each source's first attempt fails.
    await provisionMesh(hub, names, { heartbeatTimeoutMs: 10_000, topology: topo });
    await new Promise((resolve) => setTimeout(resolve, 1000));
    await provisionRegion(hub, names, EU, EU, { heartbeatTimeoutMs: 10_000 });

    // A message in each leaf stream, then a later one of the hub's own in each hub stream, taken and acked.
    const eu = jetstream(await topology.connectAs(topology.leaves[EU]!.server, ROLES.engine));
    const hubJs = jetstream(hub);
    const advisory = (consumer: string, domain: string) => JSON.stringify({ type: "io.nats.jetstream.advisory.v1.max_deliver", stream: "FM_TASKS", consumer, stream_seq: 1, deliveries: 5, domain });
    await eu.publish(maxDeliveriesAdvisorySubject(names.streams.tasks, "pool_eu-west-1_echo_normal"), advisory("pool_eu-west-1_echo_normal", EU));
    await eu.publish(names.subjects.results(EU), JSON.stringify({ from: EU }));
    await hubJs.publish(maxDeliveriesAdvisorySubject(names.streams.tasks, "pool_us-east-1_echo_normal"), advisory("pool_us-east-1_echo_normal", HUB_DOMAIN));
    await hubJs.publish(names.subjects.results(HUB_REGION), JSON.stringify({ from: HUB_REGION }));

    const started = Date.now();
    const [advisories, results] = await Promise.all([
      takeUntil(names.streams.advisories, names.consumers.deadTasks, (d) => d.includes(`"domain":"${EU}"`), "the eu advisory sourced into the hub's FM_ADVISORIES"),
      // Results: the explicit start is used from 2.15 on (where the source's position survives a restart); 2.9 needs none.
      serverAtLeast(serverVersionOf(hub), SOURCE_POSITIONS_PERSISTED) || !serverAtLeast(serverVersionOf(hub), [2, 10, 16])
        ? takeUntil(names.streams.results, names.consumers.results, (d) => d.includes(EU), "the eu result sourced into the hub's FM_RESULTS")
        : Promise.resolve([`{"from":"${EU}"} (not checked on ${hub.info?.version})`]),
    ]);
    expect(advisories.filter((d) => d.includes(`"domain":"${EU}"`))).toHaveLength(1);
    expect(results.filter((d) => d.includes(EU))).toHaveLength(1);
    console.info(`[regions] leaf sources: first messages sourced ${Date.now() - started} ms after the hub acked its own (nats-server ${hub.info?.version})`);
  }, 90_000);
});
