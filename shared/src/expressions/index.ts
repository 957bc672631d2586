export * from "./bounds.js";
export * from "./expression-pool.js";
export * from "./shared-pool.js";
export * from "./trivial.js";
export * from "./jsonata-error.js";
export * from "./scope-needs.js";
