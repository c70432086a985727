/**
 * `atlas relay [--host H] [--port P]` (SPEC §1, §11): a daemon (same home layout, pid file,
 * control socket, shutdown) that offers relaying and answers STUN, with no inbox, outbox or
 * presence of its own.
 */
import type { Ctx } from "../cli/context.ts";

export async function runRelayNode(ctx: Ctx, o: { host?: string; port?: number }): Promise<void> {
  const { runDaemon } = await import("../daemon/daemon.ts");
  await runDaemon(ctx, { host: o.host, port: o.port, bootstrap: [], relay: [] }, async (node, handlers, services) => {
    node.config.transport.offer_relay = true; // `atlas relay` forces it on
    const { offerRelay } = await import("./server.ts");
    await offerRelay(node, handlers, services);
    const t = node.config.transport;
    ctx.log.info("relay ready", {
      capacity: t.relay_capacity,
      bandwidth_limit: t.relay_bandwidth_limit,
      pipes_per_source: t.relay_pipes_per_source,
      pipes_per_target: t.relay_pipes_per_target,
      pairings_per_ip: t.relay_pairings_per_ip,
    });
  });
}
