import { parseWith, Token, type ApiClient, type Logger } from "@flowmonkey/shared";
import type { NatsConnection } from "@nats-io/nats-core";
import { z } from "zod";

/** What every route needs; handed in by the composition root so routes stay testable. */
export interface RouteDeps {
  nc: NatsConnection;
  api: ApiClient;
  /** A client with a short timeout for /healthz, so a stuck engine fails the probe quickly. */
  healthApi: ApiClient;
  log: Logger;
  maxMessageBytes: number;
}

/** A path parameter that becomes a subject token; a bad one is INVALID_INPUT naming the parameter. */
export function tokenParam(name: string, value: string | undefined): string {
  return parseWith(z.object({ [name]: Token }), { [name]: value ?? "" }, "path")[name] as string;
}
