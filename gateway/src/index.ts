export { createGateway, type Gateway, type GatewayOptions } from "./gateway.js";
export { gatewayConfig, type GatewayConfig } from "./config.js";
export { hashToken, ApiTokens, type Principal } from "./http/auth/tokens.js";
export { toProblem, problemResponse, PROBLEM_CONTENT_TYPE, type Problem } from "./http/problem.js";
export { buildHandler, readBuiltHandler, MANIFEST_SOURCE, type BuiltHandler } from "./handlers/build.js";
export { publishHandler } from "./handlers/publish.js";
