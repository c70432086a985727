/**
 * Paired rounds: issue 17's ratio targets against js-libp2p on a direct path — connect + handshake
 * ≤ 1.0×, round trip ≤ 1.0×, bulk ≥ 1.5×, 1 KiB requests with 8 in flight ≥ 1.5× — measured in
 * alternating rounds (Atlas then js-libp2p, then the other way round) rather than in phases
 * minutes apart: this machine's speed moves 10–30 % from one minute to the next (bench/RESULTS.md
 * item 13), so each round's ratio compares the two under the same conditions; the row is the
 * median of the rounds' ratios, with every round in a note. Atlas: this process's node against
 * the server child; js-libp2p: a `libp2p.mjs rounds` client (CPU 0, like this process) against a
 * `libp2p.mjs server` (CPU 1, like the server child). Skipped without bench/peers.
 */
import { rm } from "node:fs/promises";
import { join } from "node:path";
import type { Session } from "../../src/net/session.ts";
import { type BenchNode, CAP, HOST, loop, median, N, startNode } from "../common.ts";
import { addPeerFigure } from "../results.ts";
import type { TransportApi } from "./api.ts";
import { ms, rate } from "./format.ts";
import { atlasBulk } from "./bulk.ts";
import { libp2pInstalled, type Peer, startPeer, stopChild } from "./libp2p.ts";
import { message } from "./transport.ts";

/** Rounds, and what each measures per side (bulk: one N.bulkBytes stream). */
export const PAIRS = { rounds: 7, dials: 10, pings: 300, requests: 2000 } as const;

interface Figure {
  name: string;
  /** Atlas's figure for one round. */
  atlas: () => Promise<number>;
  /** js-libp2p's, from the rounds client. */
  peer: (p: Peer) => Promise<number>;
  /** A figure as printed ("3.10 ms", "12,345/s"). */
  text: (v: number) => string;
  target: { op: "<=" | ">="; value: number };
  /** Atlas's warm-up for it. */
  warm: () => Promise<void>;
}

export async function pairsPhase(t: TransportApi, s: Session, tag: string): Promise<void> {
  if (!libp2pInstalled(t.root)) return t.log("pairs: bench/peers not installed: skipped");
  const script = join(t.root, "bench", "peers", "libp2p.mjs");
  const server = startPeer(script, ["server"]);
  let client: Peer | null = null;
  // Dials from a node of their own: a new session from this process's node would replace `s`.
  const dialer = await startNode("bench-pairs-dialer", false);
  try {
    const addr = (await server.next("server address")).addr as string;
    if (t.pinning) t.pin(server.proc.pid!, "1");
    client = startPeer(script, ["rounds", addr]);
    await client.next("rounds client ready");
    const figures = figuresOf(t, s, dialer);
    await warmUp(client, figures);
    for (const f of figures) report(t, tag, f, await alternate(f, client));
  } catch (e) {
    t.note(`paired rounds skipped: ${(e as Error).message.split("\n")[0]}`);
    t.log(`pairs: failed (${(e as Error).message.split("\n")[0]})`);
  } finally {
    if (client) await stopChild(client.proc, "SIGTERM");
    await stopChild(server.proc, "SIGTERM");
    await dialer.node.close();
    await dialer.store.close();
    await rm(dialer.dir, { recursive: true, force: true });
  }
}

/** The four figures: Atlas's side on `s` (and `dialer` for connects), js-libp2p's by command. */
function figuresOf(t: TransportApi, s: Session, dialer: BenchNode): Figure[] {
  const addr = { host: HOST, port: t.ready.atlasPort };
  const req = async () => {
    const res = await s.request(message(t.client, s.nodeId), 10_000);
    if (res.type !== "MessageAck") throw new Error(`unexpected ${res.type}`);
  };
  const connect = async () => {
    const t0 = performance.now();
    const x = await dialer.node.connectTo(addr);
    const took = performance.now() - t0;
    x.close("bench");
    await x.done;
    return took;
  };
  return [
    {
      name: "connect + handshake (median of each round's)",
      atlas: async () => {
        const lat: number[] = []; // the connect alone: loop's latencies would include the close
        for (let i = 0; i < PAIRS.dials; i++) lat.push(await connect());
        return median(lat);
      },
      peer: async (p) => (await p.ask(`dial ${PAIRS.dials}`)).median as number,
      text: ms,
      target: { op: "<=", value: 1.0 },
      warm: async () => void (await loop(N.connectWarmup, 1, CAP.connect, async () => void (await connect()))),
    },
    {
      name: "round trip (median of each round's)",
      atlas: async () => median((await loop(PAIRS.pings, 1, CAP.ping, async () => void (await s.ping(5000)))).lat),
      peer: async (p) => (await p.ask(`ping ${PAIRS.pings}`)).median as number,
      text: ms,
      target: { op: "<=", value: 1.0 },
      warm: async () => void (await loop(N.pingWarmup, 1, CAP.ping, async () => void (await s.ping(5000)))),
    },
    {
      name: `bulk, 1 stream, ${N.bulkBytes / 1e6} MB`,
      atlas: async () => (await atlasBulk(t, s, [])).mbs,
      peer: async (p) => (await p.ask(`bulk ${N.bulkBytes} ${N.bulkChunk}`, CAP.bulk)).mbs as number,
      text: (v) => `${v.toFixed(1)} MB/s`,
      target: { op: ">=", value: 1.5 },
      warm: async () => {},
    },
    {
      name: `1 KiB request/response, ${N.inFlight} in flight`,
      atlas: async () => {
        const r = await loop(PAIRS.requests, N.inFlight, CAP.req, req);
        return r.n / (r.ms / 1000);
      },
      peer: async (p) => (await p.ask(`req ${PAIRS.requests} ${N.inFlight}`, 30_000)).perSecond as number,
      text: rate,
      target: { op: ">=", value: 1.5 },
      warm: async () => void (await loop(N.reqWarmup, N.inFlight, CAP.req, req)),
    },
  ];
}

/** js-libp2p's client is a fresh process; Atlas's paths were mostly warmed by the phases before. */
async function warmUp(peer: Peer, figures: Figure[]): Promise<void> {
  await peer.ask(`dial ${N.connectWarmup}`);
  await peer.ask(`ping ${N.pingWarmup}`);
  await peer.ask(`req ${N.reqWarmup} ${N.inFlight}`, 30_000);
  for (const f of figures) await f.warm();
}

/** PAIRS.rounds rounds of `f`, Atlas first in even rounds and js-libp2p first in odd ones. */
async function alternate(f: Figure, peer: Peer): Promise<{ a: number[]; b: number[] }> {
  const a: number[] = [];
  const b: number[] = [];
  for (let r = 0; r < PAIRS.rounds; r++) {
    if (r % 2 === 0) {
      a.push(await f.atlas());
      b.push(await f.peer(peer));
    } else {
      b.push(await f.peer(peer));
      a.push(await f.atlas());
    }
  }
  return { a, b };
}

/** The row (median of the rounds' ratios, against the target), a note with every round, a log line. */
function report(t: TransportApi, tag: string, f: Figure, { a, b }: { a: number[]; b: number[] }): void {
  const ratios = a.map((x, i) => x / b[i]!).sort((x, y) => x - y);
  const mid = median(ratios);
  const row = `paired rounds${tag}: ${f.name}, ${PAIRS.rounds} alternating rounds`;
  addPeerFigure(row, median(b), f.text(median(b)));
  t.addRow(row, f.text(median(a)), "", "", mid, "js-libp2p (median of the rounds' ratios)", f.target);
  t.note(
    `${row}: Atlas ÷ js-libp2p per round ${ratios.map((x) => x.toFixed(2)).join(", ")} (sorted); Atlas ${
      a.map(f.text).join(", ")
    }; js-libp2p ${b.map(f.text).join(", ")} (in round order)`,
  );
  t.log(
    `pairs: ${f.name}: Atlas ÷ js-libp2p ${mid.toFixed(2)} (${ratios[0]!.toFixed(2)}–${ratios.at(-1)!.toFixed(2)})`,
  );
}
