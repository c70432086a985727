/**
 * The three daemons a node home can run — the agent daemon, the relay and the bootstrap node —
 * each `runDaemon` with its services. The CLI's `atlas daemon`, `atlas relay` and `atlas bootstrap`
 * call them; so can a program embedding Atlas (with `nodeEnv()`, src/config/env.ts). Services are
 * imported inside, so loading this module loads none of them.
 */
import type { NodeEnv } from "../config/env.ts";
import type { DaemonOptions } from "./daemon.ts";

/** What `atlas relay` and `atlas bootstrap` take: no bootstrap or relay lists of their own. */
export type ServiceNodeOptions = Pick<DaemonOptions, "host" | "port" | "onListening">;

/**
 * `atlas daemon` / `atlas net listen`: the daemon with every service this build has — inbox,
 * outbox worker, inbox pruning (a housekeeping job; keepalive, peer pruning and the control socket
 * come with the daemon itself).
 */
export async function runAgentDaemon(env: NodeEnv, o: DaemonOptions): Promise<void> {
  const { runDaemon } = await import("./daemon.ts");
  const { serveInbox, pruneInbox } = await import("../net/messaging.ts");
  const { OutboxWorker } = await import("../net/outbox-worker.ts");
  await runDaemon(env, { ...o, role: "daemon" }, async (node, handlers, services, housekeeping) => {
    // docs/protocol.md#control-socket-cli--daemon: the inbox served, and the local API over it
    // (subscribe, net.inbox, net.message, net.peers) for the CLI, the library and `atlas mcp`.
    const { addAgentApi } = await import("./agent-api.ts");
    const api = addAgentApi(node, handlers);
    serveInbox(node, { onMessage: (row) => api.messageStored(row) });
    for (const name of ["atlas_messages_sent_total", "atlas_messages_received_total"] as const) {
      node.metrics.inc(name, {}, 0);
    }
    node.metrics.observe("atlas_outbox_depth", async () => [{ value: await node.store.outbox.count() }]);
    node.metrics.observe("atlas_outbox_oldest_age_seconds", async () => {
      const t = await node.store.outbox.oldestCreatedAt();
      return [{ value: t === null ? 0 : Math.max(0, Date.now() / 1000 - t) }];
    });
    const outbox = new OutboxWorker(node, env.log);
    services.push(outbox);
    handlers.set("outbox.kick", () => (outbox.kick(), Promise.resolve({ ok: true })));
    const { addBootstrapClient } = await import("../bootstrap/client.ts");
    // docs/protocol.md#stun: the public address (STUN, agreeing observed_addr, else the bind address), checked
    // in the background after start so a slow or failing lookup never delays the daemon.
    const { StunService } = await import("../stun/service.ts");
    let registration: { registerAll(): Promise<void> } | null = null;
    const stun = new StunService(node.endpoint, {
      servers: node.config.stun.servers,
      timeoutMs: node.config.stun.timeout * 1000,
      intervalMs: node.config.stun.interval * 1000,
      startDelayMs: 250,
      log: env.log,
      onChange: () => void registration?.registerAll(),
      onResult: (ok) => node.metrics.inc("atlas_stun_checks_total", { result: ok ? "ok" : "no_answer" }),
    });
    node.metrics.observe("atlas_public_address_known", () => [{ value: stun.status().kind === "bind" ? 0 : 1 }]);
    services.push(stun);
    registration = addBootstrapClient(node, handlers, services, {
      log: env.log,
      publicAddress: () => stun.publicAddress(),
    });
    // docs/protocol.md#relay: presence at the configured relays (and accepting pipes through them); relaying for
    // others when transport.offer_relay is on.
    const { RelayPresence } = await import("../relay/presence.ts");
    const { relayLinks } = await import("../relay/pipe.ts");
    const { serviceLegs } = await import("../net/legs.ts");
    const presence = new RelayPresence(node, env.log);
    presence.onChange = () => void registration?.registerAll();
    services.push(presence);
    // docs/protocol.md#hole-punching: relayed sessions this daemon dialled are upgraded to direct paths where the NATs allow.
    const { HolePunchService } = await import("../net/holepunch/service.ts");
    const holePunch = node.config.transport.hole_punch
      ? new HolePunchService(node, { publicAddress: () => stun.publicAddress(), log: env.log })
      : null;
    if (holePunch) services.push(holePunch);
    node.metrics.observe("atlas_relay_links_open", () => [{ value: relayLinks(node).stats().open }]);
    const baseStatus = handlers.get("status")!;
    handlers.set("status", async (a) => {
      const st = stun.status();
      return {
        ...((await baseStatus(a)) as object),
        public_address: st.address,
        public_address_source: st.source,
        relays: presence.status(),
        relay_pipes: relayLinks(node).stats(),
        relay_transport: serviceLegs(node).status(),
        hole_punch: holePunch?.status() ?? [],
      };
    });
    if (node.config.stun.serve && !node.config.transport.offer_relay) {
      (await import("../stun/server.ts")).serveStun(node.endpoint);
    }
    if (node.config.transport.offer_relay) {
      await (await import("../relay/server.ts")).offerRelay(node, handlers, services);
    }
    node.onObservedAddr = (addr, peer) => stun.noteObserved(addr, peer); // HelloAck observed_addr, docs/protocol.md#stun
    const { addSendOp } = await import("./send-now.ts");
    services.push(addSendOp(node, handlers, outbox));
    housekeeping.add("inbox pruning", () => pruneInbox(node.store, node.config));
  });
}

/**
 * `atlas relay` (docs/architecture.md, docs/protocol.md#relay): a daemon (same home layout, pid file, control socket, shutdown)
 * that offers relaying and answers STUN, with no inbox, outbox or presence of its own.
 */
export async function runRelayNode(env: NodeEnv, o: ServiceNodeOptions): Promise<void> {
  const { runDaemon } = await import("./daemon.ts");
  await runDaemon(env, { ...o, bootstrap: [], relay: [], role: "relay" }, async (node, handlers, services) => {
    node.config.transport.offer_relay = true; // `atlas relay` forces it on
    const { offerRelay } = await import("../relay/server.ts");
    await offerRelay(node, handlers, services);
    const t = node.config.transport;
    env.log.info("relay ready", {
      capacity: t.relay_capacity,
      bandwidth_limit: t.relay_bandwidth_limit,
      pipes_per_source: t.relay_pipes_per_source,
      pipes_per_target: t.relay_pipes_per_target,
      pairings_per_ip: t.relay_pairings_per_ip,
    });
  });
}

/**
 * `atlas bootstrap` (docs/architecture.md, docs/protocol.md#bootstrap-and-discovery): a daemon (same home layout, pid file, control socket,
 * shutdown) with the registry, answering STUN, without inbox or outbox.
 */
export async function runBootstrapNode(env: NodeEnv, o: ServiceNodeOptions): Promise<void> {
  const { runDaemon } = await import("./daemon.ts");
  await runDaemon(env, { ...o, bootstrap: [], relay: [], role: "bootstrap" }, async (node, handlers, services) => {
    const { offerBootstrap } = await import("../bootstrap/server.ts");
    await offerBootstrap(node, handlers);
    // docs/protocol.md#the-tcp-leg: agents whose networks drop UDP register and discover over TLS on TCP.
    await (await import("../net/tcp-serve.ts")).offerTcpLeg(node, handlers, services);
  });
}
