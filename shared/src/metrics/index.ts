export * from "./registry.js";
export * from "./serve-metrics.js";
export * from "./queue-stats.js";
export * from "./queue-metrics.js";
