/**
 * The three daemons a node home can run — the agent daemon, the relay and the bootstrap node —
 * each `runDaemon` with its services. The CLI's `atlas daemon`, `atlas relay` and `atlas bootstrap`
 * call them; so can a program embedding Atlas (with `nodeEnv()`, src/config/env.ts). Services are
 * imported inside, so loading this module loads none of them.
 */
import type { NodeEnv } from "../config/env.ts";
import type { AtlasNode } from "../net/node.ts";
import type { Logger } from "../util/log.ts";
import type { DaemonPart } from "../util/service.ts";
import type { DaemonOptions } from "./daemon.ts";

/** What `atlas relay` and `atlas bootstrap` take: no bootstrap or relay lists of their own. */
export type ServiceNodeOptions = Pick<DaemonOptions, "host" | "port" | "onListening">;

/**
 * `atlas daemon` / `atlas net listen`: the daemon with every part this build has (`agentParts`);
 * keepalive, peer pruning and the control socket come with the daemon itself.
 */
export async function runAgentDaemon(env: NodeEnv, o: DaemonOptions): Promise<void> {
  const { runDaemon } = await import("./daemon.ts");
  await runDaemon(env, { ...o, role: "daemon" }, (node) => agentParts(node, env.log));
}

/**
 * The agent daemon's parts, in start order: the local API over the inbox, the outbox worker and
 * sends, the public address (STUN), bootstrap registration, presence at relays, hole punching,
 * relaying for others (`transport.offer_relay`). The wiring between them (a new public address or
 * relay re-registers with the bootstrap nodes) is done here, in one place.
 */
async function agentParts(node: AtlasNode, log: Logger): Promise<DaemonPart[]> {
  const { serveInbox, pruneInbox } = await import("../net/messaging.ts");
  const { OutboxWorker } = await import("../net/outbox-worker.ts");
  // docs/protocol.md#control-socket-cli--daemon: the inbox served, and the local API over it
  // (subscribe, net.inbox, net.message, net.peers) for the CLI, the library and `atlas mcp`.
  const api = (await import("./agent-api.ts")).agentApi(node);
  serveInbox(node, { onMessage: (row) => api.messageStored(row) });
  observeMessaging(node);
  const outbox = new OutboxWorker(node, log);
  const messaging: DaemonPart = {
    name: "outbox",
    services: [outbox],
    handlers: { "outbox.kick": () => (outbox.kick(), Promise.resolve({ ok: true })) },
    housekeeping: { "inbox pruning": () => pruneInbox(node.store, node.config) },
  };
  const send = (await import("./send-now.ts")).sendPart(node, outbox);

  // docs/protocol.md#stun: the public address (STUN, agreeing observed_addr, else the bind address),
  // checked in the background after start so a slow or failing lookup never delays the daemon.
  let registration: { registerAll(): Promise<void> } | null = null;
  const reRegister = () => void registration?.registerAll();
  const { StunService } = await import("../stun/service.ts");
  const stun = new StunService(node.endpoint, {
    servers: node.config.stun.servers,
    timeoutMs: node.config.stun.timeout * 1000,
    intervalMs: node.config.stun.interval * 1000,
    startDelayMs: 250,
    log,
    onChange: reRegister,
    onResult: (ok) => node.metrics.inc("atlas_stun_checks_total", { result: ok ? "ok" : "no_answer" }),
  });
  node.metrics.observe("atlas_public_address_known", () => [{ value: stun.status().kind === "bind" ? 0 : 1 }]);
  node.onObservedAddr = (addr, peer) => stun.noteObserved(addr, peer); // HelloAck observed_addr, docs/protocol.md#stun
  if (node.config.stun.serve && !node.config.transport.offer_relay) {
    (await import("../stun/server.ts")).serveStun(node.endpoint);
  }
  const client = (await import("../bootstrap/client.ts")).bootstrapClient(node, {
    log,
    publicAddress: () => stun.publicAddress(),
  });
  registration = client.registration;

  // docs/protocol.md#relay: presence at the configured relays (and accepting pipes through them).
  const { RelayPresence } = await import("../relay/presence.ts");
  const { relayLinks } = await import("../relay/pipe.ts");
  const { serviceLegs } = await import("../net/legs.ts");
  const presence = new RelayPresence(node, log);
  presence.onChange = reRegister;
  node.metrics.observe("atlas_relay_links_open", () => [{ value: relayLinks(node).stats().open }]);
  // docs/protocol.md#hole-punching: relayed sessions this daemon dialled go direct where the NATs allow.
  const { HolePunchService } = await import("../net/holepunch/service.ts");
  const holePunch = node.config.transport.hole_punch
    ? new HolePunchService(node, { publicAddress: () => stun.publicAddress(), log })
    : null;
  const paths: DaemonPart = {
    name: "paths",
    services: [stun, presence, ...(holePunch ? [holePunch] : [])],
    status: () => {
      const st = stun.status();
      return {
        public_address: st.address,
        public_address_source: st.source,
        relays: presence.status(),
        relay_pipes: relayLinks(node).stats(),
        relay_transport: serviceLegs(node).status(),
        hole_punch: holePunch?.status() ?? [],
      };
    },
  };
  // Relaying for others when transport.offer_relay is on.
  const relaying = node.config.transport.offer_relay ? await (await import("../relay/server.ts")).relayParts(node) : [];
  return [api.part, messaging, send, client.part, paths, ...relaying];
}

/** The messaging metrics every agent daemon shows, even before its first message. */
function observeMessaging(node: AtlasNode): void {
  for (const name of ["atlas_messages_sent_total", "atlas_messages_received_total"] as const) {
    node.metrics.inc(name, {}, 0);
  }
  node.metrics.observe("atlas_outbox_depth", async () => [{ value: await node.store.outbox.count() }]);
  node.metrics.observe("atlas_outbox_oldest_age_seconds", async () => {
    const t = await node.store.outbox.oldestCreatedAt();
    return [{ value: t === null ? 0 : Math.max(0, Date.now() / 1000 - t) }];
  });
}

/**
 * `atlas relay` (docs/architecture.md, docs/protocol.md#relay): a daemon (same home layout, pid file, control socket, shutdown)
 * that offers relaying and answers STUN, with no inbox, outbox or presence of its own.
 */
export async function runRelayNode(env: NodeEnv, o: ServiceNodeOptions): Promise<void> {
  const { runDaemon } = await import("./daemon.ts");
  await runDaemon(env, { ...o, bootstrap: [], relay: [], role: "relay" }, async (node) => {
    node.config.transport.offer_relay = true; // `atlas relay` forces it on
    const parts = await (await import("../relay/server.ts")).relayParts(node);
    const t = node.config.transport;
    env.log.info("relay ready", {
      capacity: t.relay_capacity,
      bandwidth_limit: t.relay_bandwidth_limit,
      pipes_per_source: t.relay_pipes_per_source,
      pipes_per_target: t.relay_pipes_per_target,
      pairings_per_ip: t.relay_pairings_per_ip,
    });
    return parts;
  });
}

/**
 * `atlas bootstrap` (docs/architecture.md, docs/protocol.md#bootstrap-and-discovery): a daemon (same home layout, pid file, control socket,
 * shutdown) with the registry, answering STUN, without inbox or outbox.
 */
export async function runBootstrapNode(env: NodeEnv, o: ServiceNodeOptions): Promise<void> {
  const { runDaemon } = await import("./daemon.ts");
  await runDaemon(env, { ...o, bootstrap: [], relay: [], role: "bootstrap" }, async (node) => [
    await (await import("../bootstrap/server.ts")).bootstrapPart(node),
    // docs/protocol.md#the-tcp-leg: agents whose networks drop UDP register and discover over TLS on TCP.
    await (await import("../net/tcp-serve.ts")).tcpLegPart(node),
  ]);
}
