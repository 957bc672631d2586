/** Reported in the OpenAPI document; kept with gateway/package.json. */
export const GATEWAY_VERSION = "0.1.0";
