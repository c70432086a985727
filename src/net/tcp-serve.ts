/**
 * A relay's or bootstrap node's TCP leg (docs/protocol.md#the-tcp-leg): the TLS listener, its
 * connections accepted as the node's own (`acceptConnection`, no observed address), its port
 * advertised in Hello/HelloAck `features` as `tcp/<port>`, and its counters in `atlas status`
 * (`tcp_leg`).
 */
import { isAtlasError } from "../errors.ts";
import { TcpLegListener, type TcpLegStats } from "../transport/tcp-listener.ts";
import type { DaemonPart } from "../util/service.ts";
import { TCP_FEATURE_PREFIX } from "./legs.ts";
import type { AtlasNode } from "./node.ts";

/** Start the node's TCP leg, as a daemon part: it stops (closing every leg) with the daemon's services. */
export async function tcpLegPart(node: AtlasNode): Promise<DaemonPart> {
  const listener = await startTcpLeg(node);
  return {
    name: "TCP leg",
    services: [{ start: () => {}, stop: () => listener.close() }],
    status: () => ({ tcp_leg: listener.stats() }),
  };
}

/**
 * Listen on `transport.relay_tcp_port`, or, when it is 0, on the UDP port's number — any free port
 * if that one is taken over TCP (the port in use is advertised and shown by `atlas status`).
 */
export async function startTcpLeg(node: AtlasNode): Promise<TcpLegListener> {
  const t = node.config.transport;
  const listener = new TcpLegListener(node.endpoint, { keyPem: node.identity.keyPem, certPem: node.identity.certPem }, {
    maxConnections: t.relay_tcp_connections,
    perIp: t.relay_tcp_connections_per_ip,
    handshakeTimeoutMs: t.relay_tcp_handshake_timeout * 1000,
    idleTimeoutMs: t.relay_tcp_idle_timeout * 1000,
  });
  listener.onConnection = (c) => node.acceptConnection(c, undefined, { tcpLeg: true });
  const host = node.endpoint.local.host;
  let port: number;
  try {
    port = await listener.listen(host, t.relay_tcp_port || node.endpoint.local.port);
  } catch (e) {
    if (t.relay_tcp_port !== 0 || !isAtlasError(e, "ERR_ADDR_IN_USE")) throw e;
    port = await listener.listen(host, 0);
    node.log.warn("TCP leg: the UDP port's number is taken over TCP, listening elsewhere", { port });
  }
  const feature = `${TCP_FEATURE_PREFIX}${port}`;
  if (!node.card.features.includes(feature)) node.card.features.push(feature);
  node.log.info("TCP leg listening", { port });
  return listener;
}

export type { TcpLegStats };
