/**
 * Bulk phase: N.bulkBytes on one stream (a "bench/bulk" Message, then raw bytes the server counts),
 * N.bulkRounds rounds interleaved with the same transfer over TCP and TLS; quiche's path stats
 * are sampled during the Atlas transfers.
 */
import type { Session } from "../../src/net/session.ts";
import { FramedStream } from "../../src/wire/framed-stream.ts";
import { bulk, type Kind } from "../baseline.ts";
import { CAP, deadline, median, N } from "../common.ts";
import type { TransportApi } from "./api.ts";
import { mbps } from "./format.ts";
import { KINDS, message, portOf, udpRcvbufErrors } from "./transport.ts";

type PathSample = { rtt: number; cwnd: number };

/** One Atlas bulk transfer on a new request stream of `s`: MB/s, or throws. */
export async function atlasBulk(
  t: TransportApi,
  s: Session,
  samples: PathSample[],
): Promise<{ mbs: number; sent: number }> {
  const st = s.conn.openStream();
  const fs = new FramedStream(st);
  const chunk = new Uint8Array(N.bulkChunk).fill(0x7a);
  const t0 = performance.now();
  await fs.write(message(t.client, s.nodeId, "bench/bulk", JSON.stringify({ bytes: N.bulkBytes })));
  const go = await fs.read(10_000);
  if (go?.type !== "MessageAck") throw new Error(`bulk: unexpected ${go?.type}`);
  let sent = 0;
  const queue: Promise<void>[] = [];
  const sampler = setInterval(() => {
    const ps = s.conn.native.pathStats()[0];
    if (ps) samples.push({ rtt: ps.rtt, cwnd: ps.cwnd });
  }, 100);
  while (sent < N.bulkBytes && performance.now() - t0 < CAP.bulk) {
    const n = Math.min(chunk.length, N.bulkBytes - sent);
    sent += n;
    queue.push(st.write(n === chunk.length ? chunk : chunk.subarray(0, n)));
    if (queue.length >= 4) await deadline(queue.shift()!, 10_000, "bulk write");
  }
  await deadline(Promise.all(queue), 10_000, "bulk write");
  await deadline(st.end(), 10_000, "bulk end");
  const fin = await fs.read(CAP.bulk);
  const elapsed = performance.now() - t0;
  clearInterval(sampler);
  if (fin?.type !== "MessageAck") throw new Error(`bulk: unexpected final ${fin?.type}`);
  const counted = (await t.rpc<{ bytes: number }>("bulkBytes")).bytes;
  if (counted !== sent) throw new Error(`bulk: server counted ${counted} of ${sent} bytes`);
  return { mbs: mbps(sent, elapsed), sent };
}

export async function bulkPhase(t: TransportApi, s: Session): Promise<void> {
  const { ready, creds } = t;
  const samples: PathSample[] = [];
  const res: Record<"atlas" | Kind, number[]> = { atlas: [], tcp: [], tls: [] };
  const st0 = s.conn.native.stats();
  const udp0 = udpRcvbufErrors();
  let capped = false;
  for (let round = 0; round < N.bulkRounds; round++) {
    const a = await atlasBulk(t, s, samples);
    if (a.sent < N.bulkBytes) capped = true;
    res.atlas.push(a.mbs);
    for (const kind of KINDS) {
      const r = await bulk(kind, portOf(ready, kind), creds, N.bulkBytes, CAP.bulk);
      if (r.counted !== r.sent) throw new Error(`${kind} bulk: server counted ${r.counted} of ${r.sent}`);
      res[kind].push(mbps(r.sent, r.ms));
    }
  }
  const st1 = s.conn.native.stats();
  const path = s.conn.native.pathStats()[0];
  const udp1 = udpRcvbufErrors();
  const m = { atlas: median(res.atlas), tcp: median(res.tcp), tls: median(res.tls) };
  t.addRow(
    `bulk, 1 stream, ${N.bulkBytes / 1e6} MB, median of ${N.bulkRounds} rounds${
      capped ? ` (capped at ${CAP.bulk / 1000} s)` : ""
    }`,
    `${m.atlas.toFixed(1)} MB/s`,
    `${m.tcp.toFixed(0)} MB/s`,
    `${m.tls.toFixed(0)} MB/s`,
    m.atlas / m.tls,
    "TLS",
    { op: ">=", value: 0.15 },
  );
  const list = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(", ");
  if (samples.length > 0) {
    const rtts = samples.map((p) => p.rtt);
    const cw = samples.map((p) => p.cwnd / 1024);
    t.note(
      `during Atlas bulk (quiche path stats sampled every 100 ms): RTT median ${median(rtts)} ms, max ${
        Math.max(...rtts)
      } ms (idle loopback RTT is ~0.2–0.6 ms); ` +
        `cwnd median ${median(cw).toFixed(0)} KiB, max ${Math.max(...cw).toFixed(0)} KiB`,
    );
  }
  t.note(`bulk rounds (MB/s): Atlas ${list(res.atlas)}; TCP ${list(res.tcp)}; TLS ${list(res.tls)}`);
  t.note(
    `bulk transport, Atlas client side over all rounds: ${st1.sent - st0.sent} packets sent, ${
      st1.recv - st0.recv
    } received (ACKs), ${st1.lost - st0.lost} declared lost, ` +
      `${((st1.streamRetransBytes - st0.streamRetransBytes) / 1e6).toFixed(1)} MB retransmitted, final cwnd ${
        path ? (path.cwnd / 1024).toFixed(0) + " KiB" : "?"
      }` +
      (udp0 >= 0 ? `; kernel UDP receive-buffer drops: ${udp1 - udp0}` : ""),
  );
  t.log(
    `bulk: Atlas ${m.atlas.toFixed(1)} MB/s  TCP ${m.tcp.toFixed(0)} MB/s  TLS ${m.tls.toFixed(0)} MB/s  (rounds: ${
      list(res.atlas)
    } | ${list(res.tcp)} | ${list(res.tls)})`,
  );
}
