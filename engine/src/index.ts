export { createEngine, ENGINE_VERSION, type Engine, type EngineOptions } from "./engine.js";
export { engineConfigFields, type EngineConfig } from "./config.js";
export { migrate, SchemaTooNewError } from "./store/migrate.js";
export { openDb, type Db } from "./store/db.js";
