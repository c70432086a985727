/**
 * The node's UDP socket, as the endpoint uses it (docs/transport.md, "Datagram I/O"). Two
 * implementations: `native-socket.ts` (the atlas_udp addon: sendmmsg with UDP GSO, recvmmsg with
 * GRO, Linux) and `dgram-socket.ts` (node:dgram, everywhere else and the fallback). `bindUdp`
 * picks one.
 */
export interface UdpSocket {
  /** Which implementation: `native` or `dgram` (`atlas status` and the bench print it). */
  readonly kind: "native" | "dgram";
  /** The bound address as the OS reports it (`::` / `0.0.0.0` for a wildcard bind). */
  readonly address: { address: string; port: number };
  /**
   * Every datagram received: `data` is valid only during the call (copy what is kept); `host` is
   * in the socket's own form (`::ffff:a.b.c.d` for IPv4 on a dual-stack socket).
   */
  onMessage: (data: Buffer, host: string, port: number) => void;
  /**
   * Queue one datagram to `host` (an IP literal in the socket's form). `packet` is copied, so the
   * caller may reuse it at once. It leaves at `flush()` or at the end of the current JS task,
   * whichever comes first.
   */
  send(packet: Uint8Array, host: string, port: number): void;
  /** Send what is queued now. */
  flush(): void;
  /**
   * A reply to what was just sent is expected within `us` microseconds: the next time the event
   * loop would go to sleep, watch the node's sockets for that long first (busy polling,
   * docs/transport.md). Absent where it cannot be done (node:dgram).
   */
  expectReply?(us: number): void;
  /** Busy polls so far in this process, and how many an event ended (absent with expectReply). */
  busyPolls?(): { waits: number; hits: number };
  close(): Promise<void>;
}

export interface UdpBindOptions {
  type: "udp4" | "udp6";
  host: string;
  port: number;
  /** Requested SO_RCVBUF / SO_SNDBUF (the kernel caps them). */
  bufferBytes: number;
}
