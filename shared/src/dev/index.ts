// `@flowmonkey/shared/dev`: tooling for `flowmonkey dev` and the test suites; not used by the binaries' runtime paths.
export {
  startNatsServer,
  isNatsReachable,
  findNatsServer,
  NATS_SERVER_INSTALL_HINT,
  type StartNatsServerOptions,
  type NatsServerHandle,
  type NatsServerPorts,
  type NatsExit,
} from "./nats-server.js";
export { withParentDeath } from "./parent-death.js";
