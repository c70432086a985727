/**
 * Mutants on request streams of authenticated sessions: one mutant per stream (docs/protocol.md#messages Streams),
 * many streams in flight per connection, several connections, each a fresh throwaway identity
 * that is replaced after a while (so the daemon sees many sessions). Each answer is read back raw
 * and judged (fuzz-oracle.ts).
 */
import { type Identity, identityFromSeed } from "../src/identity/identity.ts";
import { generateSeed } from "../src/identity/keys.ts";
import { AtlasError } from "../src/errors.ts";
import type { SockAddr } from "../src/transport/addr.ts";
import type { QuicStream } from "../src/transport/stream.ts";
import { AdversarialInitiator, type RawConn } from "../test/helpers/handshake-peer.ts";
import { type Answer, answerOf, judgeRequest, labelOf, natureOf } from "./fuzz-oracle.ts";
import { mutate, Rng } from "./fuzz-mutate.ts";
import { type Seed, seeds } from "./fuzz-seeds.ts";
import type { Tally } from "./fuzz-tally.ts";

export interface RequestFuzzOptions {
  addr: SockAddr;
  victim: string;
  /** Connections at once (each its own identity and UDP socket). */
  lanes: number;
  /** Request streams in flight per connection (the daemon grants 50). */
  inflight: number;
  /** Mutants per session before the lane moves to a new identity. */
  perSession: number;
  /** Stop starting streams past this time, or once `tally.sent` reaches `maxFrames`. */
  deadline: number;
  maxFrames: number;
  seed: number;
}

export interface RequestFuzzReport {
  sessions: number;
  /** Sessions that ended while the lane was still using them (a request stream must never do that). */
  lost: number;
  /** Lanes that could not open a session (connect or handshake failed). */
  connectFailures: number;
}

/** How long an answer may take before the stream counts as unanswered. */
const ANSWER_MS = 5000;
/** Fresh seeds (new Message IDs, new challenges) every so many mutants. */
const RESEED_EVERY = 1000;

export async function fuzzRequests(o: RequestFuzzOptions, tally: Tally): Promise<RequestFuzzReport> {
  const report: RequestFuzzReport = { sessions: 0, lost: 0, connectFailures: 0 };
  const stop = () => Date.now() >= o.deadline || tally.sent >= o.maxFrames;
  await Promise.all(Array.from({ length: o.lanes }, (_, i) => lane(o, tally, report, new Rng(o.seed + i), stop)));
  return report;
}

async function lane(
  o: RequestFuzzOptions,
  tally: Tally,
  report: RequestFuzzReport,
  rng: Rng,
  stop: () => boolean,
): Promise<void> {
  while (!stop()) {
    const me = identityFromSeed(generateSeed());
    const a = await AdversarialInitiator.create(me);
    try {
      let c: RawConn;
      try {
        c = await a.connect(o.addr);
        const { verifyAck } = await c.completeHandshake(me);
        if (verifyAck?.type !== "VerifyAck") throw new Error(`handshake answered ${verifyAck?.type}`);
      } catch {
        report.connectFailures++;
        await new Promise((r) => setTimeout(r, 200));
        continue;
      }
      report.sessions++;
      const s = { seeds: seeds(me, o.victim), used: 0 };
      await Promise.all(Array.from({ length: o.inflight }, () => worker(c, s, me, o, tally, rng, stop)));
      if (!c.conn.isConnected && !stop() && s.used < o.perSession) report.lost++;
    } finally {
      await a.close();
    }
  }
}

/**
 * One of a connection's `inflight` workers: a stream per mutant, the next as soon as the answer
 * is in. (quiche puts one STREAM frame in a packet, so each request costs about a packet each
 * way whatever the batching: sending in waves bought nothing.)
 */
async function worker(
  c: RawConn,
  s: { seeds: Seed[]; used: number },
  me: Identity,
  o: RequestFuzzOptions,
  tally: Tally,
  rng: Rng,
  stop: () => boolean,
): Promise<void> {
  while (!stop() && s.used < o.perSession && c.conn.isConnected) {
    if (c.conn.native.peerStreamsLeftBidi() <= 0) {
      await new Promise((r) => setTimeout(r, 2)); // the daemon has not granted more streams yet
      continue;
    }
    if (++s.used % RESEED_EVERY === 0) s.seeds = seeds(me, o.victim);
    const m = mutate(rng, s.seeds);
    let st: QuicStream;
    try {
      st = c.conn.openStream();
    } catch {
      return; // the connection went away: the lane notices
    }
    // A refused frame makes the daemon stop reading: the write may fail, the answer still comes.
    st.end(m.bytes).catch(() => {});
    const ans = await readAnswer(st, ANSWER_MS);
    tally.record(labelOf(ans), judgeRequest(natureOf(m.bytes), ans, me.nodeId, o.victim), m.op, m.bytes);
  }
}

/** The bytes that come back on `st` until FIN, and how it ended otherwise. */
export async function readAnswer(st: QuicStream, ms: number): Promise<Answer> {
  const parts: Uint8Array[] = [];
  let n = 0;
  let end: string | undefined;
  const deadline = Date.now() + ms;
  try {
    for (;;) {
      const chunk = await st.read(Math.max(1, deadline - Date.now()));
      if (chunk === null) break;
      parts.push(chunk);
      n += chunk.length;
    }
  } catch (e) {
    end = endLabel(e);
    st.abort(0);
  }
  const bytes = parts.length === 1 ? parts[0]! : Buffer.concat(parts, n);
  return answerOf(bytes, end);
}

/** How a stream ended without (all of) its answer. */
export function endLabel(e: unknown): string {
  if (!(e instanceof AtlasError)) return `failed: ${String(e).slice(0, 40)}`;
  if (e.code === "ERR_TIMEOUT") return "no answer";
  const m = /Stream(Reset|Stopped)\((\d+)\)/.exec(e.message);
  if (m) return `stream ${m[1]!.toLowerCase()} ${m[2]}`;
  if (e.code === "ERR_RESET" || e.code === "ERR_CLOSED") return "connection closed";
  return e.code;
}
