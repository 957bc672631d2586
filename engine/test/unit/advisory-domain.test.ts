import type { NatsConnection } from "@nats-io/nats-core";
import { describe, expect, it } from "vitest";
import { createNames, regionTopology, type MaxDeliveriesAdvisory } from "@flowmonkey/shared";
import { advisoryDomain } from "../../src/dead-letters/advisory-consumer.js";
import { createDomainManagers } from "../../src/regions/domain-managers.js";

const names = createNames();
const topology = regionTopology({ hubDomain: "hub", regionDomains: { "us-east-1": "hub", "eu-west-1": "eu-west-1", "ap-south-1": "ap" } });
// of() is not called here: no connection is needed.
const noConnection = {} as NatsConnection;
const mesh = createDomainManagers(noConnection, topology);
const single = createDomainManagers(noConnection, undefined);

function advisory(consumer: string, domain?: string): MaxDeliveriesAdvisory {
  return { type: "io.nats.jetstream.advisory.v1.max_deliver", stream: "FM_TASKS", consumer, stream_seq: 1, deliveries: 5, ...(domain ? { domain } : {}) };
}

describe("the domain of a MAX_DELIVERIES advisory (whose FM_TASKS holds the parked task)", () => {
  it("is the server's own word when it gives one; the hub's domain is the engine's own stream", () => {
    expect(advisoryDomain(advisory("pool_eu-west-1_echo_normal", "eu-west-1"), mesh, names)).toBe("eu-west-1");
    expect(advisoryDomain(advisory("pool_us-east-1_echo_normal", "hub"), mesh, names)).toBeUndefined();
    // Same stream, same sequence, different domains: never the same message.
    expect(advisoryDomain(advisory("pool_ap-south-1_echo_high", "ap"), mesh, names)).toBe("ap");
  });

  it("without a domain field, is the domain of the consumer's region in the topology", () => {
    expect(advisoryDomain(advisory("pool_ap-south-1_echo~gpu_low"), mesh, names)).toBe("ap");
    expect(advisoryDomain(advisory("pool_us-east-1_echo_normal"), mesh, names)).toBeUndefined();
    // A region the topology does not map, or a consumer that is not a pool: the engine's own.
    expect(advisoryDomain(advisory("pool_sa-east-1_echo_normal"), mesh, names)).toBeUndefined();
    expect(advisoryDomain(advisory("something_else"), mesh, names)).toBeUndefined();
  });

  it("is always the engine's own stream on a single server without a topology", () => {
    expect(advisoryDomain(advisory("pool_eu-west-1_echo_normal"), single, names)).toBeUndefined();
    expect(single.domains).toEqual([undefined]);
    expect(mesh.domains).toEqual([undefined, "eu-west-1", "ap"]);
  });
});
