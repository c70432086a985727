/**
 * An agent's end of a relay pipe (docs/protocol.md#relay). The pipe carries the packets of a second QUIC
 * connection, end to end between the two agents, as QUIC DATAGRAMs on this agent's connection to
 * the relay, each prefixed with the relay's 4-byte session number. `RelayPipe` is that inner
 * connection's PacketSink; `RelayLinks` routes incoming DATAGRAMs by (relay connection, session)
 * to the right pipe — never through the UDP socket's connection-ID map.
 *
 * Lifetime: the pairing stream stays open for as long as the pipe lives. Its end (FIN, reset, or
 * the relay connection dying) closes the inner connection; the inner connection closing ends the
 * stream, which tells the relay to free the slot.
 */
import type { AtlasNode } from "../net/node.ts";
import type { Session } from "../net/session.ts";
import type { PacketSink, QuicConnection } from "../transport/connection.ts";
import { VIRTUAL_LOCAL, VIRTUAL_PACKET_SIZE, VIRTUAL_REMOTE } from "../transport/endpoint.ts";
import type { HostPort } from "../transport/native.ts";
import type { QuicStream } from "../transport/stream.ts";

/** The session prefix of every pipe DATAGRAM. */
export const PIPE_HEADER = 4;
/** Smallest DATAGRAM an agent–relay connection must carry: one full inner packet (docs/protocol.md#relay). */
export const MIN_PIPE_DATAGRAM = PIPE_HEADER + VIRTUAL_PACKET_SIZE;

/** The session number a pipe DATAGRAM starts with (4 bytes, big-endian). */
export function pipeSession(d: Uint8Array): number {
  return ((d[0]! << 24) | (d[1]! << 16) | (d[2]! << 8) | d[3]!) >>> 0;
}

/** Write `session` as a pipe DATAGRAM's prefix, in place. */
export function setPipeSession(d: Uint8Array, session: number): void {
  d[0] = session >>> 24;
  d[1] = (session >>> 16) & 0xff;
  d[2] = (session >>> 8) & 0xff;
  d[3] = session & 0xff;
}

export class RelayPipe implements PacketSink {
  readonly relay: Session;
  readonly session: number;
  /** `atlas_<id>@host:port` of the relay, as sessions and outputs name it. */
  readonly label: string;
  /** The inner, end-to-end connection; on the accepting side it appears with the first packet. */
  inner: QuicConnection | null = null;
  /** Called for the first packet when there is no inner connection yet (the accepting side). */
  onFirstPacket: ((pipe: RelayPipe) => QuicConnection | null) | null = null;
  /** DATAGRAMs the relay connection refused to queue (its send queue was full). */
  drops = 0;
  private out = new Uint8Array(PIPE_HEADER + 1500);
  private closed = false;

  constructor(relay: Session, session: number, label: string) {
    this.relay = relay;
    this.session = session;
    this.label = label;
    setPipeSession(this.out, session);
  }

  get conn(): QuicConnection {
    return this.relay.conn;
  }

  /** PacketSink: one inner packet out as one prefixed DATAGRAM (quiche copies it). */
  sendPacket(packet: Uint8Array, _to: HostPort): void {
    if (this.closed) return;
    this.out.set(packet, PIPE_HEADER);
    if (!this.relay.conn.sendDatagram(this.out.subarray(0, PIPE_HEADER + packet.length))) this.drops++;
  }

  /** One DATAGRAM from the relay for this pipe (prefix included). */
  deliver(d: Uint8Array): void {
    if (this.closed) return;
    if (!this.inner) {
      const c = this.onFirstPacket?.(this);
      if (!c) return;
      this.attach(c);
    }
    this.inner!.receive(d.subarray(PIPE_HEADER), VIRTUAL_REMOTE, VIRTUAL_LOCAL);
  }

  /** Set the inner connection; its closing ends the pipe. */
  attach(inner: QuicConnection): void {
    this.inner = inner;
    void inner.closed.then(() => this.end("connection closed"));
  }

  private end: (why: string) => void = () => {};

  /**
   * Tie the pipe's life to its pairing stream: whichever ends first ends the other. `onEnd` runs
   * once, after both are done with.
   */
  bind(stream: QuicStream, onEnd: () => void): void {
    let ended = false;
    const end = (this.end = (why: string) => {
      if (ended) return;
      ended = true;
      this.closed = true;
      this.inner?.abandon(why); // the pipe is gone: no closing period to wait out
      stream.end().catch(() => {});
      stream.stopReading(0);
      onEnd();
    });
    void (async () => {
      try {
        while ((await stream.read()) !== null) {
          // the relay sends nothing after RelayReady; ignore anything that arrives
        }
      } catch {
        // reset, or the relay connection is gone
      }
      end("relay pipe closed");
    })();
    void this.relay.done.then(() => end("relay connection closed"));
  }
}

/** Every pipe of one node, by the relay connection it runs over and the relay's session number. */
export class RelayLinks {
  private byConn = new Map<QuicConnection, Map<number, RelayPipe>>();
  /** DATAGRAMs for no known pipe (a pipe just torn down, or garbage from the relay). */
  unknown = 0;

  add(pipe: RelayPipe): void {
    const conn = pipe.conn;
    let m = this.byConn.get(conn);
    if (!m) {
      this.byConn.set(conn, m = new Map());
      conn.onDatagram = (d) => this.route(conn, d);
    }
    m.set(pipe.session, pipe);
  }

  /** DATAGRAMs of pipes already closed that their relay connection refused to queue. */
  private closedDrops = 0;

  /** Open pipes and DATAGRAM drops (docs/protocol.md#relay: `dgramSend` drops silently — count them), for `atlas status`. */
  stats(): { open: number; datagram_drops: number; unknown_session: number } {
    const pipes = this.pipes();
    return {
      open: pipes.length,
      datagram_drops: this.closedDrops + pipes.reduce((n, p) => n + p.drops, 0),
      unknown_session: this.unknown,
    };
  }

  remove(pipe: RelayPipe): void {
    const m = this.byConn.get(pipe.conn);
    if (!m || m.get(pipe.session) !== pipe) return;
    this.closedDrops += pipe.drops;
    m.delete(pipe.session);
    if (m.size === 0) {
      this.byConn.delete(pipe.conn);
      pipe.conn.onDatagram = null;
    }
  }

  get size(): number {
    let n = 0;
    for (const m of this.byConn.values()) n += m.size;
    return n;
  }

  pipes(): RelayPipe[] {
    return [...this.byConn.values()].flatMap((m) => [...m.values()]);
  }

  private route(conn: QuicConnection, d: Uint8Array): void {
    if (d.length <= PIPE_HEADER) return void this.unknown++;
    const pipe = this.byConn.get(conn)?.get(pipeSession(d));
    if (!pipe) return void this.unknown++;
    pipe.relay.lastActivity = Date.now(); // a live pipe keeps its relay session from idling out
    pipe.deliver(d);
  }
}

const links = new WeakMap<AtlasNode, RelayLinks>();

/** The node's pipe table (one per node). */
export function relayLinks(node: AtlasNode): RelayLinks {
  let l = links.get(node);
  if (!l) links.set(node, l = new RelayLinks());
  return l;
}
