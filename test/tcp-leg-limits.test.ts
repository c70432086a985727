/**
 * The TCP leg's limits (docs/protocol.md#the-tcp-leg), with real TCP and TLS sockets on
 * 127.0.0.0/8: connections per relay and per IP, new connections per IP a minute, the TLS handshake deadline, frames of at most
 * 1500 bytes, the idle timeout, and the bounded send queue (packets dropped, not queued, when the
 * peer does not read).
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { connect as tcpConnect, createServer, type Socket } from "node:net";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import type { Config } from "../src/config/defaults.ts";
import { startTcpLeg } from "../src/net/tcp-serve.ts";
import { FrameReader, FrameSink, MAX_TCP_FRAME, TCP_SEND_BOUND } from "../src/transport/tcp-frames.ts";
import { TCP_LEG_ALPN } from "../src/transport/tcp-leg.ts";
import { VIRTUAL_REMOTE } from "../src/transport/endpoint.ts";
import { createTestnet } from "./helpers/testnet.ts";
import { waitFor } from "./helpers/wait.ts";

const net = createTestnet({ prefix: "atlas-tcp-limits-" });
after(() => net.destroy());

async function legNode(configure: (c: Config) => void) {
  const n = await net.node({ name: "relay", configure });
  const leg = await startTcpLeg(n);
  net.defer(() => leg.close());
  return leg;
}

/** A raw TCP connection from `from` (a 127.0.0.0/8 address); resolves once connected. */
function raw(port: number, from = "127.0.0.1"): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = tcpConnect({ host: "127.0.0.1", port, localAddress: from }, () => resolve(s));
    s.once("error", reject);
    net.defer(() => s.destroy());
  });
}

/** A TLS connection speaking the leg's ALPN; resolves once the handshake is done. */
function tls(port: number): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: "127.0.0.1", port, rejectUnauthorized: false, ALPNProtocols: [TCP_LEG_ALPN] });
    s.once("secureConnect", () => resolve(s));
    s.once("error", reject);
    net.defer(() => s.destroy());
  });
}

const closed = (s: Socket) => new Promise<void>((r) => (s.destroyed ? r() : s.once("close", () => r())));

describe("TCP leg limits", { timeout: 30_000 }, () => {
  test("a source IP over relay_tcp_connections_per_ip is refused while other addresses still get in", async () => {
    const leg = await legNode((c) => (c.transport.relay_tcp_connections_per_ip = 2));
    await raw(leg.port);
    await raw(leg.port);
    const third = await raw(leg.port);
    await closed(third);
    await raw(leg.port, "127.0.0.2");
    await waitFor("counts", () => leg.stats().refused_per_ip === 1 && leg.stats().connections === 3);
  });

  test("a source IP over handshakes_per_ip_per_minute new connections is refused; other addresses still get in", async () => {
    const leg = await legNode((c) => (c.security.handshakes_per_ip_per_minute = 2));
    await closed((await raw(leg.port, "127.0.0.6")).destroy());
    await closed((await raw(leg.port, "127.0.0.6")).destroy());
    await closed(await raw(leg.port, "127.0.0.6")); // the third in a minute: closed by the relay
    await raw(leg.port, "127.0.0.7");
    await waitFor("counts", () => leg.stats().refused_rate === 1 && leg.stats().connections === 1);
    assert.equal(leg.stats().refused_per_ip, 0);
  });

  test("a leg that would start a QUIC handshake over handshake_limit in flight is closed after TLS", async () => {
    const leg = await legNode((c) => (c.security.handshake_limit = 1));
    await tls(leg.port); // TLS done, its QUIC handshake never starts: in flight until its deadline
    await closed(await tls(leg.port));
    assert.equal(leg.stats().refused_limit, 1);
    assert.equal(leg.stats().accepted, 1);
  });

  test("a relay over relay_tcp_connections refuses the next connection from any address", async () => {
    const leg = await legNode((c) => (c.transport.relay_tcp_connections = 2));
    await raw(leg.port, "127.0.0.3");
    await raw(leg.port, "127.0.0.4");
    await closed(await raw(leg.port, "127.0.0.5"));
    assert.equal(leg.stats().refused_limit, 1);
  });

  test("a connection that does not finish TLS within relay_tcp_handshake_timeout is closed", async () => {
    const leg = await legNode((c) => (c.transport.relay_tcp_handshake_timeout = 1));
    const t0 = Date.now();
    await closed(await raw(leg.port));
    assert.ok(Date.now() - t0 >= 900, "not before the deadline");
    await waitFor("counted", () => leg.stats().handshake_timeouts === 1 && leg.stats().connections === 0);
  });

  test("a frame longer than 1500 bytes, or empty, closes the leg", async () => {
    const leg = await legNode(() => {});
    for (const len of [MAX_TCP_FRAME + 1, 0]) {
      const s = await tls(leg.port);
      const head = Buffer.alloc(2);
      head.writeUInt16BE(len);
      s.write(head);
      await closed(s);
    }
    await waitFor("both counted", () => leg.stats().bad_frames === 2);
  });

  test("a leg with no byte either way for relay_tcp_idle_timeout is closed", async () => {
    const leg = await legNode((c) => (c.transport.relay_tcp_idle_timeout = 1));
    await closed(await tls(leg.port));
    await waitFor("counted", () => leg.stats().idle_closed === 1 && leg.stats().connections === 0);
  });

  test("packets to a peer that stops reading are dropped above the send bound, not queued", async () => {
    const server = createServer((s) => s.pause()); // accepts and never reads
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    net.defer(() => new Promise((r) => server.close(r)));
    const s = await raw((server.address() as { port: number }).port);
    const sink = new FrameSink(s);
    const packet = new Uint8Array(1350);
    for (let i = 0; i < 5000; i++) sink.sendPacket(packet, VIRTUAL_REMOTE); // 6.7 MB offered in one turn
    assert.ok(sink.counters.dropped > 4000, `dropped ${sink.counters.dropped}`);
    assert.ok(s.writableLength <= TCP_SEND_BOUND + 1352, `queued ${s.writableLength} bytes`);
  });

  test("the frame reader yields each packet across any split of the byte stream and holds at most one frame", () => {
    const frames = [3, 1500, 1, 700].map((n, i) => Buffer.alloc(n, i + 1));
    const wire = Buffer.concat(frames.flatMap((f) => [Buffer.from([f.length >> 8, f.length & 0xff]), f]));
    for (const step of [1, 2, 7, 1501, wire.length]) {
      const got: number[] = [];
      const r = new FrameReader();
      for (let off = 0; off < wire.length; off += step) {
        assert.equal(r.push(wire.subarray(off, off + step), (p) => got.push(p.length, p[0]!)), null);
      }
      assert.deepEqual(got, [3, 1, 1500, 2, 1, 3, 700, 4]);
    }
  });
});
