/**
 * Mutants on the control stream after an honest handshake. Valid mutants (fuzz-survivable.ts)
 * go in batches: a batch and a probe Ping are written at once, and what the daemon says before the
 * probe's Pong are its answers, in order (Ping → Pong, Pong and Error → nothing, any other type →
 * Error 2003). Between batches, now and then, an arbitrary mutant: one the daemon cannot decode
 * ends the session (docs/protocol.md#messages: its Error, then DISCONNECT_PROTOCOL_ERROR) and the lane starts a new one.
 */
import { identityFromSeed } from "../src/identity/identity.ts";
import { generateSeed } from "../src/identity/keys.ts";
import type { SockAddr } from "../src/transport/addr.ts";
import { within } from "../src/util/time.ts";
import { encodeFrame } from "../src/wire/frame.ts";
import type { WireMessage } from "../src/wire/messages.ts";
import { AdversarialInitiator, type RawConn } from "../test/helpers/handshake-peer.ts";
import {
  type Closed,
  type CloseSeen,
  controlAnswers,
  judgeControl,
  judgeValidControl,
  leavesPartial,
  naturesOf,
} from "./fuzz-oracle.ts";
import { type Mutant, mutate, Rng } from "./fuzz-mutate.ts";
import { type Seed, seeds } from "./fuzz-seeds.ts";
import { mutateKeepingValid, survivableSeeds } from "./fuzz-survivable.ts";
import type { Tally } from "./fuzz-tally.ts";

export interface ControlFuzzOptions {
  addr: SockAddr;
  victim: string;
  /** Sessions fuzzed at once with batches of valid mutants (and an arbitrary one now and then). */
  lanes: number;
  /** Sessions fuzzed at once with arbitrary mutants only (a new session after each refusal). */
  arbitraryLanes: number;
  deadline: number;
  maxFrames: number;
  seed: number;
}

/** How long the probe's Pong (or the end of the session) may take. */
const ANSWER_MS = 3000;
/** How long the close may take once the control stream ended. */
const CLOSE_MS = 2000;
/** Probe Pings carry this `ts`: no mutant Ping is answered with echo = 1 by accident. */
const PROBE_TS = 1;
/** Valid mutants per batch (one write, a few packets). */
const BATCH = 256;
/** Batches in a row between chances of an arbitrary mutant. */
const ROUNDS = 8;
/** Chance of an arbitrary (most often session-ending) mutant after ROUNDS batches. */
const ARBITRARY_AFTER_ROUNDS = 0.5;

export interface ControlFuzzReport {
  sessions: number;
  connectFailures: number;
}

/** Outcomes of the valid mutants (in batches) and of the arbitrary ones, kept apart. */
export interface ControlTallies {
  valid: Tally;
  arbitrary: Tally;
}

export async function fuzzControl(o: ControlFuzzOptions, t: ControlTallies): Promise<ControlFuzzReport> {
  const report = { sessions: 0, connectFailures: 0 };
  const stop = () => Date.now() >= o.deadline || t.valid.sent + t.arbitrary.sent >= o.maxFrames;
  const lanes = Array.from({ length: o.lanes + o.arbitraryLanes }, (_, i) => {
    const arbitraryOnly = i >= o.lanes;
    return lane(o, t, report, new Rng(o.seed + i), stop, arbitraryOnly);
  });
  await Promise.all(lanes);
  return report;
}

async function lane(
  o: ControlFuzzOptions,
  t: ControlTallies,
  report: ControlFuzzReport,
  rng: Rng,
  stop: () => boolean,
  arbitraryOnly: boolean,
): Promise<void> {
  let probe = 0x10000;
  // One identity per lane: a certificate costs ~25 ms of CPU, and most mutants end the session.
  const me = identityFromSeed(generateSeed());
  const a = await AdversarialInitiator.create(me);
  const pool = seeds(me, o.victim);
  const valid = survivableSeeds(pool);
  try {
    while (!stop()) {
      let c: RawConn | null = null;
      try {
        c = await a.connect(o.addr);
        const { verifyAck } = await c.completeHandshake(me);
        if (verifyAck?.type !== "VerifyAck") throw new Error(`handshake answered ${verifyAck?.type}`);
        report.sessions++;
        while (!stop() && c.conn.isConnected) {
          const next = () => ++probe;
          if (!arbitraryOnly && !(await validBatches(c, valid, t.valid, rng, next, ROUNDS, stop))) break;
          const arbitrary = arbitraryOnly || rng.next() < ARBITRARY_AFTER_ROUNDS;
          if (arbitrary && !(await oneMutant(c, pool, t.arbitrary, rng, ++probe))) break;
        }
      } catch {
        report.connectFailures++;
        await new Promise((r) => setTimeout(r, 100));
      } finally {
        c?.close();
      }
    }
  } finally {
    await a.close();
  }
}

/** Sends one mutant (and a probe); records the outcome; false when the session is over. */
async function oneMutant(
  c: RawConn,
  pool: Seed[],
  tally: Tally,
  rng: Rng,
  probeId: number,
): Promise<boolean> {
  const m = mutate(rng, pool);
  // A mutant that ends inside a frame would swallow the probe: send it with FIN instead (the
  // daemon then refuses the cut-short frame). Whole frames, one or several, get the probe.
  const fin = m.bytes.length === 0 || leavesPartial(m.bytes);
  const probe = encodeFrame({ type: "Ping", ts: PROBE_TS, id: probeId });
  const write = fin ? c.control.stream.end(m.bytes) : c.control.stream.write(Buffer.concat([m.bytes, probe]));
  write.catch(() => {});
  const r = await untilProbe(c, probeId);
  // Error + FIN: close first as an Atlas peer does (the daemon waits for it), but on every
  // WAIT_CLOSE_EVERY-th, wait for the daemon's close and check its code.
  const refused = r.fin && r.answers[r.answers.length - 1]?.type === "Error";
  const closed: CloseSeen = !r.ended ? null : refused && ++waits % WAIT_CLOSE_EVERY !== 0 ? "ours" : await closeOf(c);
  const v = r.timedOut
    ? { ok: false, why: "no answer within 3 s" }
    : judgeControl(naturesOf(m.bytes, fin), r.answers, closed);
  tally.record(label(r.answers, closed, r.timedOut), v, m.op, m.bytes);
  return !r.ended && !r.timedOut && !fin;
}

/** Every so many refusals, the daemon's own close (and its code) is waited for. */
const WAIT_CLOSE_EVERY = 8;
let waits = 0;

interface SentBatch {
  batch: (Mutant & { msg: WireMessage })[];
  probeId: number;
}

/** Write a batch of valid mutants and its probe Ping in one go. */
function writeBatch(c: RawConn, pool: Seed[], rng: Rng, probeId: number): SentBatch {
  const batch = Array.from({ length: BATCH }, () => mutateKeepingValid(rng, pool));
  const probe = encodeFrame({ type: "Ping", ts: PROBE_TS, id: probeId });
  c.control.stream.write(Buffer.concat([...batch.map((m) => m.bytes), probe])).catch(() => {});
  return { batch, probeId };
}

/** Read a batch's answers (up to its probe's Pong); each mutant judged on its share of them. */
async function judgeBatch(c: RawConn, b: SentBatch, tally: Tally): Promise<boolean> {
  const r = await untilProbe(c, b.probeId);
  let at = 0;
  for (const m of b.batch) {
    const k = controlAnswers(m.msg);
    const mine = r.answers.slice(at, at + k);
    at += k;
    const v = r.timedOut || r.ended
      ? { ok: false, why: r.timedOut ? "no answer to a batch of valid frames" : "session ended during valid frames" }
      : judgeValidControl(m.msg, mine);
    tally.record(label(mine, null, r.timedOut), v, m.op, m.bytes);
  }
  if (at !== r.answers.length && !r.ended) {
    const why = `${r.answers.length - at} answers beyond the batch's`;
    tally.record("extra answers", { ok: false, why }, "batch", new Uint8Array());
  }
  return !r.ended && !r.timedOut;
}

/**
 * `rounds` batches of valid mutants, two in flight: the next batch is on its way while the
 * daemon answers the last (answers come in order, each batch's ending at its probe's Pong).
 */
async function validBatches(
  c: RawConn,
  pool: Seed[],
  tally: Tally,
  rng: Rng,
  probe: () => number,
  rounds: number,
  stop: () => boolean,
): Promise<boolean> {
  const inFlight: SentBatch[] = [];
  for (let i = 0; i < rounds && !stop(); i++) {
    inFlight.push(writeBatch(c, pool, rng, probe()));
    if (inFlight.length > 1 && !(await judgeBatch(c, inFlight.shift()!, tally))) return false;
  }
  for (const b of inFlight) if (!(await judgeBatch(c, b, tally))) return false;
  return true;
}

/** Frames the daemon sent before the probe's Pong; `ended` when the stream or connection ended first. */
async function untilProbe(c: RawConn, probeId: number) {
  const answers: WireMessage[] = [];
  const deadline = Date.now() + ANSWER_MS;
  for (;;) {
    let f: WireMessage | null;
    try {
      f = await c.control.read(Math.max(1, deadline - Date.now()));
    } catch (e) {
      const timedOut = (e as { code?: string }).code === "ERR_TIMEOUT";
      return { answers, ended: !timedOut, timedOut, fin: false };
    }
    if (f === null) return { answers, ended: true, timedOut: false, fin: true };
    if (f.type === "Pong" && f.id === probeId && f.echo === PROBE_TS) {
      return { answers, ended: false, timedOut: false, fin: false };
    }
    if (f.type === "Ping") continue; // the daemon's keepalive, not an answer
    answers.push(f);
  }
}

async function closeOf(c: RawConn): Promise<Closed | null> {
  const info = await within(c.conn.closed, CLOSE_MS);
  return info ? { code: info.code, reason: info.reason, app: info.app } : null;
}

function label(answers: WireMessage[], closed: CloseSeen, timedOut: boolean): string {
  const f = answers[0];
  const first = !f ? "nothing" : f.type === "Error" ? `Error ${f.code}` : f.type;
  if (timedOut) return `${first}, no probe answer`;
  if (closed === "ours") return `${first} + FIN`;
  return closed ? `${first}, closed ${closed.code}` : first;
}
