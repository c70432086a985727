/**
 * Request phase: 1 KiB Message → MessageAck on one session, sequential and N.inFlight in flight,
 * against the same request/response over TCP and TLS.
 */
import type { Session } from "../../src/net/session.ts";
import { type Kind, reqSession } from "../baseline.ts";
import { CAP, loop, median, N, percentile } from "../common.ts";
import type { TransportApi } from "./api.ts";
import { ms, rate } from "./format.ts";
import { KINDS, message, portOf } from "./transport.ts";

/** `tag` names the CPU placement in the rows: " [2 cores]", " [1 core]" or "". */
export async function reqPhase(t: TransportApi, s: Session, tag: string): Promise<void> {
  const { ready, creds, client } = t;
  const peer = s.nodeId;
  const atlasReq = async () => {
    const res = await s.request(message(client, peer), 10_000);
    if (res.type !== "MessageAck") throw new Error(`unexpected ${res.type}`);
  };
  await loop(N.reqWarmup, 1, CAP.req, atlasReq);
  const q0 = s.conn.native.stats();
  const seq = await loop(N.reqSeq, 1, CAP.req, atlasReq);
  const q1 = s.conn.native.stats();
  await loop(N.reqWarmup, N.inFlight, CAP.req, atlasReq);
  const w = s.conn.native.stats();
  const par = await loop(N.reqParallel, N.inFlight, CAP.req, atlasReq);
  const q2 = s.conn.native.stats();
  const base: Record<Kind, { seq: number; par: number }> = { tcp: { seq: 0, par: 0 }, tls: { seq: 0, par: 0 } };
  for (const kind of KINDS) {
    const r = await reqSession(kind, portOf(ready, kind), creds);
    await loop(N.reqWarmup, 1, CAP.req, r.request);
    const a = await loop(N.reqSeq, 1, CAP.req, r.request);
    await loop(N.reqWarmup, N.inFlight, CAP.req, r.request);
    const b = await loop(N.reqParallel, N.inFlight, CAP.req, r.request);
    base[kind] = { seq: a.n / (a.ms / 1000), par: b.n / (b.ms / 1000) };
    r.close();
  }
  const rs = seq.n / (seq.ms / 1000);
  const rp = par.n / (par.ms / 1000);
  t.addRow(
    `1 KiB request/response${tag}, sequential (${seq.n}${seq.capped ? ", capped" : ""})`,
    rate(rs),
    rate(base.tcp.seq),
    rate(base.tls.seq),
    rs / base.tls.seq,
    "TLS",
  );
  t.addRow(
    `1 KiB request/response${tag}, ${N.inFlight} in flight (${par.n}${par.capped ? ", capped" : ""})`,
    rate(rp),
    rate(base.tcp.par),
    rate(base.tls.par),
    rp / base.tls.par,
    "TLS",
  );
  t.note(
    `requests${tag} (each loop after ${N.reqWarmup} requests of its own shape): Atlas latency sequential median ${
      ms(median(seq.lat))
    } p99 ${ms(percentile(seq.lat, 99))}, ${N.inFlight} in flight median ${ms(median(par.lat))} p99 ${
      ms(percentile(par.lat, 99))
    }; ` +
      `${((q1.sent - q0.sent) / seq.n).toFixed(2)} UDP packets client→server and ${
        ((q1.recv - q0.recv) / seq.n).toFixed(2)
      } server→client per sequential request; ` +
      `${q1.lost - q0.lost + q2.lost - w.lost} packets declared lost by the client; requests above 5 ms: ${
        seq.lat.filter((x) => x > 5).length
      } sequential, ${par.lat.filter((x) => x > 5).length} with ${N.inFlight} in flight`,
  );
  t.log(
    `req${tag}: Atlas ${rate(rs)} / ${rate(rp)}  TCP ${rate(base.tcp.seq)} / ${rate(base.tcp.par)}  TLS ${
      rate(base.tls.seq)
    } / ${rate(base.tls.par)}`,
  );
}
