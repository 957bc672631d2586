import { createNames, parseTaskPoolName, PRIORITIES } from "@flowmonkey/shared";
import { describe, expect, it } from "vitest";
import { ApiTokens, authenticate, hashToken, hasScope, type Principal } from "../../src/http/auth/tokens.js";
import { gatewayConfig } from "../../src/config.js";
import { loadConfig } from "@flowmonkey/shared";

describe("parseTaskPoolName", () => {
  it("reads back every pool consumer name createNames builds, handlers with '_' and '-' included", () => {
    const names = createNames("fm");
    for (const handler of ["echo", "video_encode", "http-request", "a_b_c"]) {
      for (const priority of PRIORITIES) {
        expect(parseTaskPoolName(names.consumers.taskPool("eu-west-1", handler, priority))).toEqual({ region: "eu-west-1", handler, priority, capabilities: [] });
        expect(parseTaskPoolName(names.consumers.taskPool("eu-west-1", handler, priority, ["gpu", "avx_512"]))).toEqual({ region: "eu-west-1", handler, priority, capabilities: ["avx_512", "gpu"] });
      }
    }
  });

  it.each(["engine_results", "pool_us-east-1_echo", "pool_us-east-1_echo_urgent", "pool_US_echo_high"])("ignores %s", (name) => {
    expect(parseTaskPoolName(name)).toBeUndefined();
  });
});

describe("API tokens", () => {
  const acme: Principal = { tenantId: "acme", scopes: ["write"] };
  const tokens = new Map([[hashToken("acme-token-0123456789"), acme]]);

  it("authenticate finds a bearer token by its hash, and refuses anything else with UNAUTHORIZED", () => {
    expect(authenticate(tokens, "Bearer acme-token-0123456789")).toBe(acme);
    for (const header of [undefined, "", "acme-token-0123456789", "Basic YWNtZTp4", "Bearer other-token-0123456789", "Bearer short"]) {
      expect(() => authenticate(tokens, header)).toThrow(expect.objectContaining({ code: "UNAUTHORIZED" }));
    }
  });

  it("scopes nest: admin ⊃ write ⊃ read", () => {
    expect(["read", "write", "admin"].map((s) => hasScope(acme, s as "read"))).toEqual([true, true, false]);
    expect(hasScope({ scopes: ["read"] }, "write")).toBe(false);
    expect(hasScope({ scopes: ["admin"] }, "read")).toBe(true);
  });

  it("FM_API_TOKENS is validated: sha256 keys, known scopes, nothing else", () => {
    const key = hashToken("x".repeat(20));
    const config = loadConfig(gatewayConfig, { env: { FM_API_TOKENS: JSON.stringify({ [key]: { tenantId: "acme", scopes: ["read"] } }) } });
    expect(config.apiTokens).toEqual({ [key]: { tenantId: "acme", scopes: ["read"] } });
    expect(loadConfig(gatewayConfig, { env: {} }).apiTokens).toBeUndefined();
    for (const bad of ['{"abc": {"scopes": ["read"]}}', `{"${key}": {"scopes": ["root"]}}`, `{"${key}": {"scopes": []}}`, `{"${key}": {"scopes": ["read"], "extra": 1}}`, "not json"]) {
      expect(() => loadConfig(gatewayConfig, { env: { FM_API_TOKENS: bad } }), bad).toThrow(/FM_API_TOKENS/);
    }
    expect(ApiTokens.safeParse({}).success).toBe(true);
  });
});
