import { z } from "zod";
import { Region } from "../protocol/tokens.js";

/**
 * Where each region's queues live. A multi-region mesh is a hub (the engine's JetStream domain)
 * plus one leaf node per region with a domain of its own; a region mapped to the hub's domain
 * keeps its queue on the hub. No topology at all is the single-server mesh (dev.conf): every
 * region's queue in one stream.
 */
export const JS_DOMAIN_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
export const JsDomain = z.string().regex(JS_DOMAIN_PATTERN, "must be letters, digits, '-' or '_' (a JetStream domain)");

/** `{"us-east-1": "hub", "eu-west-1": "eu-west-1"}`: region → JetStream domain holding its queue. */
export const RegionDomains = z.record(Region, JsDomain);
export type RegionDomains = z.infer<typeof RegionDomains>;

export const RegionTopologySchema = z
  .object({ hubDomain: JsDomain, regionDomains: RegionDomains })
  .refine((t) => Object.values(t.regionDomains).includes(t.hubDomain), {
    message: "at least one region must live in the hub's domain (its task stream needs a subject)",
  });
export type RegionTopologyInput = z.infer<typeof RegionTopologySchema>;

export interface RegionTopology {
  readonly hubDomain: string;
  /** Regions whose task queue is on the hub. */
  readonly hubRegions: readonly string[];
  /** Regions on leaf nodes, each with its own domain. */
  readonly leafRegions: ReadonlyArray<{ region: string; domain: string }>;
  /** The domain that stores `region`'s tasks; undefined for a region the topology does not know. */
  domainOf(region: string): string | undefined;
}

export function regionTopology(input: RegionTopologyInput): RegionTopology {
  const t = RegionTopologySchema.parse(input);
  const entries = Object.entries(t.regionDomains);
  return {
    hubDomain: t.hubDomain,
    hubRegions: entries.filter(([, d]) => d === t.hubDomain).map(([r]) => r),
    leafRegions: entries.filter(([, d]) => d !== t.hubDomain).map(([region, domain]) => ({ region, domain })),
    domainOf: (region) => t.regionDomains[region],
  };
}

/** The JetStream API prefix of another domain, as used by stream sources (`$JS.<domain>.API`). */
export function domainApiPrefix(domain: string): string {
  return `$JS.${domain}.API`;
}
