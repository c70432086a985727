/**
 * Dialling a relay or bootstrap node over its TCP leg (docs/protocol.md#the-tcp-leg): TLS 1.3 to
 * `host:port`, the server's certificate checked as QUIC checks it — its key must hash to the node
 * ID we pin — then an ordinary QUIC connection inside (tcp-leg.ts) and the Atlas handshake on it,
 * pinned to the same node ID. The session that results is like any other: requests, Relay*
 * messages and DATAGRAM pipes run on it unchanged.
 */
import { connect, type TLSSocket } from "node:tls";
import { TCP_TLS_CONNECT_MS } from "../config/durations.ts";
import { AtlasError } from "../errors.ts";
import { peerKeyFromCertificate } from "../identity/cert.ts";
import { nodeIdFromPublicKey, shortNodeId } from "../identity/node-id.ts";
import { formatAddr, type SockAddr } from "../transport/addr.ts";
import { bindLeg, TCP_LEG_ALPN } from "../transport/tcp-leg.ts";
import type { AtlasNode } from "./node.ts";
import type { Session } from "./session.ts";

export interface TcpDialOptions {
  expectedNodeId?: string;
  /** The UDP address the node is configured under (stored as its address, matched for trust). */
  dialled?: SockAddr;
  signal?: AbortSignal;
}

/** A session with the node at `to` over its TCP leg. Typed errors as for a UDP dial. */
export async function connectOverTcp(node: AtlasNode, to: SockAddr, o: TcpDialOptions = {}): Promise<Session> {
  const socket = await tlsConnect(to, o.signal);
  try {
    checkPin(socket, to, o.expectedNodeId);
  } catch (e) {
    socket.destroy();
    throw e;
  }
  const conn = bindLeg(socket, (sink) => node.endpoint.openTunnel("client", sink, to));
  return node.runOutbound(conn, {
    expectedNodeId: o.expectedNodeId,
    dialled: o.dialled,
    signal: o.signal,
    path: "direct",
    tcpLeg: true,
  });
}

/**
 * Whether the node at `to` answers on its TCP leg as the node we pin, without opening a session
 * (`atlas netcheck`: a session here would replace the one its UDP probe opens): TLS 1.3, the
 * certificate checked, then closed. The node ID it proved.
 */
export async function probeTcpLeg(to: SockAddr, expectedNodeId?: string, signal?: AbortSignal): Promise<string> {
  const socket = await tlsConnect(to, signal);
  try {
    return checkPin(socket, to, expectedNodeId);
  } finally {
    socket.destroy();
  }
}

/** TLS to `to` within TCP_TLS_CONNECT_MS (or until `signal`); the socket once the handshake is done. */
function tlsConnect(to: SockAddr, signal?: AbortSignal): Promise<TLSSocket> {
  const where = `TCP ${formatAddr(to)}`;
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: to.host,
      port: to.port,
      rejectUnauthorized: false, // no CA: the certificate's key is checked against the node ID instead
      minVersion: "TLSv1.3",
      ALPNProtocols: [TCP_LEG_ALPN],
    });
    socket.setNoDelay(true); // frames are packets: Nagle plus delayed ACKs cost 40 ms a round trip
    const fail = (e: AtlasError) => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      socket.destroy();
      reject(e);
    };
    const onAbort = () => fail(new AtlasError("ERR_CLOSED", "dial cancelled"));
    const timer = setTimeout(
      () =>
        fail(new AtlasError("ERR_UNREACHABLE", `no TLS answer from ${where} within ${TCP_TLS_CONNECT_MS / 1000} s`)),
      TCP_TLS_CONNECT_MS,
    );
    if (signal?.aborted) return onAbort();
    signal?.addEventListener("abort", onAbort, { once: true });
    socket.once("error", (e) => fail(new AtlasError("ERR_UNREACHABLE", `${where}: ${e.message}`)));
    socket.once("secureConnect", () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      socket.removeAllListeners("error");
      resolve(socket);
    });
  });
}

/** The server's certificate key must be the node key we pin (as QUIC's handshake checks it). */
function checkPin(socket: TLSSocket, to: SockAddr, expected?: string): string {
  if (socket.alpnProtocol !== TCP_LEG_ALPN) {
    throw new AtlasError("ERR_HANDSHAKE_FAILED", `TCP ${formatAddr(to)} does not speak ${TCP_LEG_ALPN}`);
  }
  const der = socket.getPeerCertificate(true)?.raw;
  if (!der) throw new AtlasError("ERR_HANDSHAKE_FAILED", `TCP ${formatAddr(to)} presented no certificate`);
  const id = nodeIdFromPublicKey(peerKeyFromCertificate(new Uint8Array(der)));
  if (expected && id !== expected) {
    throw new AtlasError(
      "ERR_INVALID_IDENTITY",
      `TCP ${formatAddr(to)} is ${shortNodeId(id)}, not the pinned ${shortNodeId(expected)}`,
    );
  }
  return id;
}
