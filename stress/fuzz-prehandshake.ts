/**
 * Mutants as the first frame on stream 0 of a fresh QUIC connection, before any handshake: the
 * daemon must answer per docs/protocol.md#handshake (HelloAck for a Hello that passes every check, else an Error
 * frame and a close with its code; an Error frame of ours only gets the close). One connection per
 * mutant — the protocol allows nothing after a refused first frame — many at once. Hellos are
 * the favourite seed: most of the responder's checks are about them.
 */
import { identityFromSeed } from "../src/identity/identity.ts";
import { generateSeed } from "../src/identity/keys.ts";
import type { SockAddr } from "../src/transport/addr.ts";
import { within } from "../src/util/time.ts";
import { PRE_HANDSHAKE_MAX_PAYLOAD, type WireMessage } from "../src/wire/messages.ts";
import { AdversarialInitiator, RawConn } from "../test/helpers/handshake-peer.ts";
import { type CloseSeen, judgePreHandshake, natureOf } from "./fuzz-oracle.ts";
import { mutate, Rng } from "./fuzz-mutate.ts";
import { seeds } from "./fuzz-seeds.ts";
import type { Tally } from "./fuzz-tally.ts";

export interface PreHandshakeFuzzOptions {
  addr: SockAddr;
  victim: string;
  /** Connections in flight at once. */
  concurrency: number;
  /** security.max_clock_drift_secs of the victim. */
  maxDriftS: number;
  deadline: number;
  maxFrames: number;
  seed: number;
}

const ANSWER_MS = 3000;
const CLOSE_MS = 2000;
/** Hello seeds, this many times over the others. */
const HELLO_WEIGHT = 6;

export async function fuzzPreHandshake(
  o: PreHandshakeFuzzOptions,
  tally: Tally,
): Promise<{ connectFailures: number }> {
  const me = identityFromSeed(generateSeed());
  const a = await AdversarialInitiator.create(me);
  const all = seeds(me, o.victim);
  const pool = [
    ...all,
    ...Array.from({ length: HELLO_WEIGHT - 1 }, () => all.filter((s) => s.type === "Hello")).flat(),
  ];
  const report = { connectFailures: 0 };
  const stop = () => Date.now() >= o.deadline || tally.sent >= o.maxFrames;
  const rng = new Rng(o.seed);
  try {
    await Promise.all(Array.from({ length: o.concurrency }, async () => {
      while (!stop()) {
        const m = mutate(rng, pool);
        const c = new RawConn(a.endpoint.connect(o.addr));
        if (!(await within(c.conn.established.then(() => true, () => false), ANSWER_MS))) {
          c.close(); // not left to linger until the idle timeout, holding a connection slot
          report.connectFailures++;
          continue;
        }
        const { first, closed } = await firstAnswer(c, m.bytes);
        const n = natureOf(m.bytes, PRE_HANDSHAKE_MAX_PAYLOAD);
        tally.record(label(first, closed), judgePreHandshake(n, first, closed, me, o.maxDriftS), m.op, m.bytes);
      }
    }));
  } finally {
    await a.close();
  }
  return report;
}

/** Every so many connections, the daemon's own close (and its code) is waited for. */
const WAIT_CLOSE_EVERY = 8;
let waits = 0;

/**
 * Write the mutant with FIN on stream 0; the first frame back, then how the connection ended.
 * After an Error frame (and its FIN) we close first, as an Atlas initiator does, except on every
 * WAIT_CLOSE_EVERY-th connection, where the daemon's close and its code are checked too.
 */
async function firstAnswer(c: RawConn, bytes: Uint8Array): Promise<{ first: WireMessage | null; closed: CloseSeen }> {
  c.control.stream.end(bytes).catch(() => {});
  let first: WireMessage | null = null;
  try {
    first = await c.control.read(ANSWER_MS);
    if (first?.type === "Error" && ++waits % WAIT_CLOSE_EVERY !== 0 && (await endOf(c)) === null) {
      c.close();
      return { first, closed: "ours" };
    }
  } catch {
    // reset, closed or silent: the close tells
  }
  const info = first?.type === "HelloAck" ? undefined : await within(c.conn.closed, CLOSE_MS);
  c.close();
  return { first, closed: info ? { code: info.code, reason: info.reason, app: info.app } : null };
}

/** What follows the Error on stream 0: null for its FIN (as docs/protocol.md says), else what came. */
async function endOf(c: RawConn): Promise<WireMessage | null | "error"> {
  try {
    return await c.control.read(ANSWER_MS);
  } catch {
    return "error";
  }
}

function label(first: WireMessage | null, closed: CloseSeen): string {
  const f = !first ? "nothing" : first.type === "Error" ? `Error ${first.code}` : first.type;
  if (closed === "ours") return `${f} + FIN`;
  return closed ? `${f}, closed ${closed.code}` : f;
}
