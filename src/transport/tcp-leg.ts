/**
 * One TCP leg: a TLS socket carrying one QUIC connection's packets as frames (tcp-frames.ts).
 * Their lives are tied: the socket closing abandons the connection (no packet could reach the
 * peer any more), and the connection closing ends the socket once its last packets are out.
 */
import type { TLSSocket } from "node:tls";
import type { QuicConnection } from "./connection.ts";
import { VIRTUAL_LOCAL, VIRTUAL_REMOTE } from "./endpoint.ts";
import { type FrameCounters, FrameReader, FrameSink } from "./tcp-frames.ts";

/** ALPN of the TCP leg: a TLS client speaking anything else is refused in the handshake. */
export const TCP_LEG_ALPN = "atlas-tcp/1";

/** After the QUIC connection closed, its CONNECTION_CLOSE frame gets this long to leave. */
const END_GRACE_MS = 300;

const legs = new WeakMap<QuicConnection, FrameCounters>();

/** True when `conn` runs over a TCP leg (for `atlas status`: the relay leg is TCP). */
export function isTcpLeg(conn: QuicConnection): boolean {
  return legs.has(conn);
}

/** The frame counters of a TCP-leg connection, or null for any other. */
export function tcpLegCounters(conn: QuicConnection): FrameCounters | null {
  return legs.get(conn) ?? null;
}

/**
 * A QUIC connection opened by `open` on `socket`'s TCP leg. `onBadFrame` hears of a protocol
 * error (the leg is closed right after).
 */
export function bindLeg(
  socket: TLSSocket,
  open: (sink: FrameSink) => QuicConnection,
  onBadFrame: (why: string) => void = () => {},
): QuicConnection {
  const sink = new FrameSink(socket);
  const conn = open(sink);
  legs.set(conn, sink.counters);
  const reader = new FrameReader();
  const onFrame = (p: Uint8Array) => {
    sink.counters.framesIn++;
    conn.receive(p, VIRTUAL_REMOTE, VIRTUAL_LOCAL);
  };
  socket.on("data", (chunk: Buffer) => {
    const bad = reader.push(chunk, onFrame);
    if (!bad) return;
    onBadFrame(bad);
    socket.destroy();
  });
  socket.on("error", () => {}); // a reset is the close below
  socket.once("close", () => conn.abandon("tcp leg closed"));
  void conn.closed.then(() => {
    if (socket.destroyed) return;
    socket.end();
    setTimeout(() => socket.destroy(), END_GRACE_MS).unref();
  });
  return conn;
}
