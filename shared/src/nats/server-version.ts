import type { NatsConnection } from "@nats-io/nats-core";

/** A nats-server release as [major, minor, patch]. */
export type ServerVersion = readonly [number, number, number];

/** Parses "2.15.3" (a "-dev"/"-RC.1" suffix is ignored); undefined when it is not a version. */
export function parseServerVersion(version: string | undefined): ServerVersion | undefined {
  const match = /^v?(\d+)\.(\d+)\.(\d+)/.exec(version ?? "");
  return match ? [Number(match[1]), Number(match[2]), Number(match[3])] : undefined;
}

/** The version of the server a connection is on (from its INFO), if it said one. */
export function serverVersionOf(nc: NatsConnection): ServerVersion | undefined {
  return parseServerVersion(nc.info?.version);
}

/** `version` is `min` or newer; an unknown version counts as new (the current release line). */
export function serverAtLeast(version: ServerVersion | undefined, min: ServerVersion): boolean {
  if (!version) return true;
  for (let i = 0; i < 3; i++) {
    if (version[i]! !== min[i]!) return version[i]! > min[i]!;
  }
  return true;
}

/**
 * From nats-server 2.10.16 (nats-io/nats-server#5389), a stream source that has no position yet
 * (it never delivered a message, or the sourcing stream was recreated) and no configured start
 * is started at the sourcing stream's last message time once the sourcing stream's first
 * sequence is above 1 — in a work-queue stream, as soon as one of its messages was acked. Upstream
 * messages stored before that time are never sourced. 2.9 delivers the source from its start.
 */
export const SOURCE_STARTS_AT_LAST_TIME: ServerVersion = [2, 10, 16];

/**
 * From nats-server 2.15 a stream keeps each source's position in its store (it survives the
 * stream's messages being acked, purged or expired), so a restart or leader change resumes the
 * source where it stopped: a configured start applies only to a source that never delivered.
 */
export const SOURCE_POSITIONS_PERSISTED: ServerVersion = [2, 15, 0];
