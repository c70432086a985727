/**
 * What a daemon runs besides its node: services and control operations. Defined here, at the
 * bottom of the import graph, so that a service in any layer (net/, stun/, relay/, bootstrap/)
 * implements it without importing daemon/ (docs/architecture.md, "Layers and imports").
 */

/** A service: started after the node, stopped (within 1 s) before the node closes. */
export interface Service {
  start(): void;
  stop(): void | Promise<void>;
}

/** A control-socket operation: the request's `args` in, the reply's `result` out. */
export type ControlHandler = (args: Record<string, unknown>) => Promise<unknown>;
