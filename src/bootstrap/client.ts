/**
 * The agent's side of bootstrap and discovery (docs/protocol.md#bootstrap-and-discovery), in one call from the agent daemon's
 * `extend`: the registration service (register.ts) and the `net.discover` op (discover.ts). The
 * rest lives by job: borrow-session.ts (short-lived sessions with bootstrap nodes), targets.ts,
 * record-check.ts (PeerRecord checks) and merge.ts (upserting into `peers`); their public names
 * are re-exported here.
 */
import type { AtlasNode } from "../net/node.ts";
import type { DaemonPart } from "../util/service.ts";
import { discoverHandler } from "./discover.ts";
import { BootstrapRegistration, type RegistrationOptions } from "./register.ts";

export { withBootstrap } from "./borrow-session.ts";
export {
  type BootstrapAnswer,
  type ControlHandler,
  discover,
  discoverArgs,
  type DiscoveredPeer,
  discoverHandler,
  type DiscoverQuery,
  type DiscoverReport,
} from "./discover.ts";
export { absorbPeer } from "./merge.ts";
export { type CheckedPeer, checkPeerRecord } from "./record-check.ts";
export {
  BootstrapRegistration,
  registerWith,
  registrationMessage,
  type RegistrationOptions,
  type RegistrationState,
} from "./register.ts";
export { bootstrapTargets, noBootstrapError } from "./targets.ts";

/**
 * Everything the agent daemon needs for docs/protocol.md#bootstrap-and-discovery, in one call from its `extend`: the
 * registration service and the `net.discover` op. Returns the service (for `atlas status`).
 */
export function bootstrapClient(
  node: AtlasNode,
  o: RegistrationOptions = {},
): { part: DaemonPart; registration: BootstrapRegistration } {
  const reg = new BootstrapRegistration(node, o);
  const part: DaemonPart = {
    name: "bootstrap registration",
    services: [reg],
    handlers: {
      "net.discover": discoverHandler(node),
      "bootstrap.registrations": () => Promise.resolve(reg.status()),
    },
  };
  return { part, registration: reg };
}
