/** Round-trip phase: Atlas Ping/Pong on one session against a 32-byte echo over TCP and TLS. */
import type { Session } from "../../src/net/session.ts";
import { echoSession, type Kind } from "../baseline.ts";
import { CAP, loop, median, N, percentile } from "../common.ts";
import type { TransportApi } from "./api.ts";
import { ms } from "./format.ts";
import { KINDS, portOf } from "./transport.ts";

/** `tag` names the CPU placement in the rows: " [2 cores]", " [1 core]" or "". */
export async function rttPhase(t: TransportApi, s: Session, tag: string): Promise<void> {
  const { ready, creds } = t;
  await loop(N.pingWarmup, 1, CAP.ping, async () => void (await s.ping(5000)));
  const q0 = s.conn.native.stats();
  const atlas = await loop(N.ping, 1, CAP.ping, async () => void (await s.ping(5000)));
  const q1 = s.conn.native.stats();
  const base: Record<Kind, number[]> = { tcp: [], tls: [] };
  for (const kind of KINDS) {
    const e = await echoSession(kind, portOf(ready, kind), creds);
    await loop(N.pingWarmup, 1, CAP.ping, e.rtt);
    base[kind] = (await loop(N.ping, 1, CAP.ping, e.rtt)).lat;
    e.close();
  }
  const a50 = median(atlas.lat);
  const tcp50 = median(base.tcp);
  const a99 = percentile(atlas.lat, 99);
  t.addRow(
    `round trip${tag}, median of ${atlas.n} (Ping/Pong vs ${N.rttBytes}-byte echo)`,
    ms(a50),
    ms(tcp50),
    ms(median(base.tls)),
    a50 / tcp50,
    "TCP",
    { op: "<=", value: 5 },
  );
  t.addRow(
    `round trip${tag}, p99`,
    ms(a99),
    ms(percentile(base.tcp, 99)),
    ms(percentile(base.tls, 99)),
    a99 / percentile(base.tcp, 99),
    "TCP",
  );
  t.note(
    `Ping${tag}: ${((q1.sent - q0.sent) / atlas.n).toFixed(2)} UDP packets client→server and ${
      ((q1.recv - q0.recv) / atlas.n).toFixed(2)
    } server→client per round trip, ` +
      `${q1.lost - q0.lost} declared lost; ${atlas.lat.filter((x) => x > 2).length} of ${atlas.n} pings above 2 ms`,
  );
  t.log(`rtt${tag}: Atlas ${ms(a50)} p99 ${ms(a99)}  TCP ${ms(tcp50)}  TLS ${ms(median(base.tls))}`);
}
