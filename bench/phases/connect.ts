/**
 * Connect phase: connect + Atlas handshake until the Session exists, against a TCP connect and a
 * TLS 1.3 handshake; QUIC connect alone (TLS 1.3, plus a Retry when the server is under load) as a breakdown.
 */
import { type Kind, open } from "../baseline.ts";
import { CAP, HOST, loop, median, N, percentile } from "../common.ts";
import type { TransportApi } from "./api.ts";
import { ms } from "./format.ts";
import { KINDS, portOf } from "./transport.ts";

export async function connectPhase(t: TransportApi): Promise<void> {
  const { ready, client, creds } = t;
  const addr = { host: HOST, port: ready.atlasPort };
  const base: Record<Kind, number[]> = { tcp: [], tls: [] };
  type Counts = { retries?: number; withoutRetry?: number };
  const c0 = await t.rpc<Counts>("counts");
  for (const kind of KINDS) {
    for (let i = 0; i < N.connectWarmup; i++) (await open(kind, portOf(ready, kind), creds)).destroy();
    base[kind] = (await loop(N.connect, 1, CAP.connect, async () =>
      void (await open(kind, portOf(ready, kind), creds)).destroy())).lat;
  }
  // QUIC only (Retry + TLS 1.3 handshake, no Atlas handshake): a breakdown, not a target
  const quicOnly = await loop(N.connect, 1, CAP.connect, async () => {
    const c = client.node.endpoint.connect(addr);
    await c.established;
    c.close(0, "bench");
    await c.closed;
  });
  for (let i = 0; i < N.connectWarmup; i++) {
    const s = await client.node.connectTo(addr);
    s.close("bench");
    await s.done;
  }
  // connectTo until the Session exists; closing it is outside the timed part
  const lat: number[] = [];
  const lossy: boolean[] = []; // the client's quiche declared a packet lost / retransmitted during the connect
  const t0 = performance.now();
  for (let i = 0; i < N.connect && performance.now() - t0 < CAP.connect; i++) {
    const s0 = performance.now();
    const s = await client.node.connectTo(addr);
    lat.push(performance.now() - s0);
    const st = s.conn.native.stats();
    lossy.push(st.lost > 0 || st.retrans > 0);
    s.close("bench");
    await s.done;
  }
  const c1 = await t.rpc<Counts>("counts");
  const retries = (c1.retries ?? 0) - (c0.retries ?? 0);
  const withoutRetry = (c1.withoutRetry ?? 0) - (c0.withoutRetry ?? 0);
  const a = median(lat);
  const q = median(quicOnly.lat);
  const tlsM = median(base.tls);
  t.addRow(
    `connect + Atlas handshake → Session, median of ${lat.length}`,
    ms(a),
    ms(median(base.tcp)),
    ms(tlsM),
    a / tlsM,
    "TLS",
    { op: "<=", value: 2.5 },
  );
  t.addRow(
    `↳ of which QUIC connect only (TLS 1.3, plus a Retry when the server is under load), median of ${quicOnly.n}`,
    ms(q),
    "",
    "",
    q / tlsM,
    "TLS",
  );
  const lossCount = lossy.filter(Boolean).length;
  t.note(
    `connect: Atlas min ${ms(Math.min(...lat))}, p90 ${ms(percentile(lat, 90))}, ${
      lat.filter((x) => x > 40).length
    } of ${lat.length} above 40 ms; ` +
      `in ${lossCount} of ${lat.length} the client's quiche counted a lost/retransmitted packet on loopback (the dropped-first-Hello stall, see the analysis); ` +
      `QUIC-only p90 ${ms(percentile(quicOnly.lat, 90))}, TLS p90 ${ms(percentile(base.tls, 90))}; ` +
      `the server sent ${retries} QUIC Retries and admitted ${withoutRetry} connections without one`,
  );
  t.log(
    `connect: Atlas ${ms(a)} (QUIC only ${ms(q)})  TCP ${ms(median(base.tcp))}  TLS ${ms(tlsM)}  ` +
      `(server: ${retries} Retries, ${withoutRetry} admitted without)`,
  );
}
