import { parseWith, SecretKeyName, SecretListRequest, SecretPutInput } from "@flowmonkey/shared";
import { Hono } from "hono";
import { z } from "zod";
import { limitBody, readBody } from "../body.js";
import type { RouteDeps } from "../deps.js";
import { allow, confineTenant } from "../auth/access.js";

/** The body of PUT /v1/secrets/:key: the key is in the path. The API client seals the value before it crosses NATS. */
export const SecretPutBody = SecretPutInput.omit({ key: true });

/**
 * The vault over HTTP, a thin call into fm.api.secrets.*: store one secret (its value goes in,
 * never comes out), and list a tenant's secret names.
 */
export function secretRoutes(deps: RouteDeps): Hono {
  const { api, maxMessageBytes } = deps;
  const app = new Hono();

  app.put("/v1/secrets/:key", limitBody(maxMessageBytes), async (c) => {
    const tenant = allow(c, "write");
    const { key } = parseWith(z.object({ key: SecretKeyName }), { key: c.req.param("key") }, "path");
    const body = await readBody(c, SecretPutBody, { maxBytes: maxMessageBytes, what: "secret" });
    // A tenant's token stores its own tenant's secrets: for it, an omitted tenantId (the default '') means its own.
    const tenantId = confineTenant(tenant, tenant !== undefined && body.tenantId === "" ? undefined : body.tenantId);
    const reply = await api.putSecret({ ...body, key, ...(tenantId === undefined ? {} : { tenantId }) });
    return c.json(reply, reply.created ? 201 : 200);
  });

  app.delete("/v1/secrets/:key", async (c) => {
    const tenant = allow(c, "write");
    const { key } = parseWith(z.object({ key: SecretKeyName }), { key: c.req.param("key") }, "path");
    const { tenantId } = parseWith(SecretListRequest, c.req.query(), "query");
    const reply = await api.deleteSecret({ key, tenantId: confineTenant(tenant, tenant !== undefined && tenantId === "" ? undefined : tenantId) ?? "" });
    return c.json(reply, reply.deleted ? 200 : 404);
  });

  app.get("/v1/secrets", async (c) => {
    const tenant = allow(c, "read");
    const { tenantId } = parseWith(SecretListRequest, c.req.query(), "query");
    return c.json(await api.listSecrets(confineTenant(tenant, tenant !== undefined && tenantId === "" ? undefined : tenantId)));
  });

  return app;
}
