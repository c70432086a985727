/**
 * What a daemon runs besides its node: services and control operations. Defined here, at the
 * bottom of the import graph, so that a service in any layer (net/, stun/, relay/, bootstrap/)
 * implements it without importing daemon/ (docs/architecture.md, "Layers and imports").
 */

/**
 * One piece of a daemon (the inbox API, the outbox worker, STUN, presence, registration, a relay
 * server, a TCP leg…): what it runs, which control operations it answers, what it adds to
 * `atlas status` and which periodic jobs it needs. A daemon is its node plus a list of parts
 * (`runDaemon(env, o, parts)`, src/daemon/daemon.ts); nothing wraps another part's handlers.
 */
export interface DaemonPart {
  /** For errors and logs: which part this is. */
  name: string;
  /** Started after the node, in list order; stopped before it closes. */
  services?: Service[];
  /** Control operations; two parts may not answer the same one. */
  handlers?: Record<string, ControlHandler>;
  /** Fields added to the `status` reply (merged in list order). */
  status?: () => object | Promise<object>;
  /** Housekeeping jobs by name, run with the daemon's periodic housekeeping. */
  housekeeping?: Record<string, () => Promise<unknown>>;
}

/** A service: started after the node, stopped (within 1 s) before the node closes. */
export interface Service {
  start(): void;
  stop(): void | Promise<void>;
}

/**
 * A control-socket operation: the request's `args` in, the reply's `result` out. A streaming
 * operation also calls `call.stream()`: the connection then stays open after the reply line and
 * the returned sink pushes lines on it.
 */
export type ControlHandler = (args: Record<string, unknown>, call?: ControlCall) => Promise<unknown>;

export interface ControlCall {
  /** Keep this connection open after the reply and push lines on it. */
  stream(): PushSink;
}

/** Lines pushed to one client, with back-pressure: the daemon never queues more than the socket's high water. */
export interface PushSink {
  /** Resolves once the reply line is out: nothing is pushed before it. */
  readonly ready: Promise<void>;
  /** Write one line (without its newline). False: the client is behind, wait for `drained()`. */
  push(line: string): boolean;
  /** Resolves true once the client has read enough to take more, false when it went away. */
  drained(): Promise<boolean>;
  /** Resolves when the client is gone (or the daemon closes the stream). */
  readonly closed: Promise<void>;
  isClosed(): boolean;
}
