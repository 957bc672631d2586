export * from "./common.js";
export * from "./flow-start.js";
export * from "./task.js";
export * from "./task-result.js";
export * from "./progress.js";
export * from "./execution-event.js";
export * from "./event.js";
export * from "./dead-task.js";
