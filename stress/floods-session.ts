/**
 * Floods from authenticated sessions for the floods phase: requests past the rate limits (docs/protocol.md#trust-rate-limits-and-bans:
 * Error 4001, three violations ban the peer — Disconnect DISCONNECT_BANNED, then its handshakes
 * refused with 4001), Pings on the control stream (each must get its Pong), and Error frames on
 * the control stream (not rate limited either; each is logged: the log bytes they cost are noted).
 */
import { ProtocolCode } from "../src/errors.ts";
import { type Identity, identityFromSeed } from "../src/identity/identity.ts";
import { generateSeed } from "../src/identity/keys.ts";
import { encodeFrame } from "../src/wire/frame.ts";
import { DISCONNECT_BANNED, type WireMessage } from "../src/wire/messages.ts";
import { AdversarialInitiator, messageFrame, nowSecs, RawConn } from "../test/helpers/handshake-peer.ts";
import { count, expect, type PhaseRow } from "./harness.ts";
import type { Victim } from "./victim.ts";

const ANSWER_MS = 5000;
/** A request flood lasts well under this (the ban comes within a second or two). */
const FLOOD_MS = 30_000;
/** Requests in flight at once in a request flood (the daemon grants 50 streams). */
const IN_FLIGHT = 40;
/** Frames written at once in a control-stream flood. */
const BATCH = 500;

async function session(v: Victim): Promise<{ a: AdversarialInitiator; c: RawConn; me: Identity }> {
  const me = identityFromSeed(generateSeed());
  const a = await AdversarialInitiator.create(me);
  const c = await a.connect(v.addr);
  const { verifyAck } = await c.completeHandshake(me);
  if (verifyAck?.type !== "VerifyAck") throw new Error(`handshake answered ${verifyAck?.type}`);
  return { a, c, me };
}

/** One Message request; the answer's label. */
async function ask(c: RawConn, me: Identity, victim: string): Promise<string> {
  try {
    const fs = await c.openRequest(messageFrame(me.nodeId, victim));
    const m = await fs.read(ANSWER_MS);
    return !m ? "FIN" : m.type === "Error" ? `Error ${m.code}` : m.type;
  } catch (e) {
    return /closed|ERR_CLOSED/.test(String(e)) ? "session closed" : `stream failed (${String(e).slice(0, 40)})`;
  }
}

/**
 * One identity floods Message requests until its session ends (or `max` requests): the first few
 * are acknowledged, the rest refused with 4001, the violations ban it, and its next handshake is
 * refused with 4001.
 */
export async function requestFlood(row: PhaseRow, v: Victim, max: number): Promise<void> {
  const { a, c, me } = await session(v);
  try {
    // Read the control stream throughout: a frame still unread when the connection closes is lost.
    const ending = lastControlFrame(c);
    const seen = new Map<string, number>();
    let sent = 0;
    const worker = async () => {
      while (sent < max && c.conn.isConnected) {
        if (c.conn.native.peerStreamsLeftBidi() <= 0) {
          await new Promise((r) => setTimeout(r, 2)); // no stream granted yet
          continue;
        }
        sent++;
        const label = await ask(c, me, v.nodeId);
        seen.set(label, (seen.get(label) ?? 0) + 1);
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
    row.attempts += sent;
    for (const [k, n] of seen) count(row, `request flood: ${k}`, n);
    const bye = await ending;
    count(row, `request flood: session ended with ${bye}`);
    expect(
      row,
      (seen.get(`Error ${ProtocolCode.ERR_RATE_LIMITED}`) ?? 0) > 0,
      "requests over the limits get Error 4001",
    );
    expect(row, bye === `Disconnect ${DISCONNECT_BANNED}`, `the flooding peer is banned (${bye})`);
    const again = await rehandshake(a, v, me);
    count(row, `request flood: handshake after the ban: ${again}`);
    expect(
      row,
      again === `Error ${ProtocolCode.ERR_RATE_LIMITED}`,
      `a banned peer's handshake is refused with 4001 (${again})`,
    );
  } finally {
    await a.close();
  }
}

/** What ended the session: the Disconnect frame on the control stream, if one came. */
async function lastControlFrame(c: RawConn): Promise<string> {
  const deadline = Date.now() + FLOOD_MS;
  try {
    for (;;) {
      const m = await c.read(Math.max(1, deadline - Date.now()));
      if (!m) return "FIN";
      if (m.type === "Disconnect") return `Disconnect ${m.reason}`;
    }
  } catch (e) {
    return `no Disconnect (${String(e).slice(0, 60)})`;
  }
}

/** A new connection's Hello: what the daemon answers (a banned peer: Error 4001). */
async function rehandshake(a: AdversarialInitiator, v: Victim, me: Identity): Promise<string> {
  let c: RawConn;
  try {
    c = await a.connect(v.addr);
  } catch (e) {
    return `no connection (${String(e).slice(0, 60)})`;
  }
  try {
    await c.send(RawConn.hello(me));
    const m = await c.read(ANSWER_MS);
    return !m ? "FIN" : m.type === "Error" ? `Error ${m.code}` : m.type;
  } catch (e) {
    return `failed: ${String(e).slice(0, 60)}`;
  } finally {
    c.close();
  }
}

/**
 * `n` frames made by `make` written on the control stream in batches, then a probe Ping; returns
 * the frames the daemon answered with (before the probe's Pong) and the time taken.
 */
async function controlFlood(
  c: RawConn,
  n: number,
  make: (i: number) => WireMessage,
): Promise<{ answers: WireMessage[]; secs: number; probed: boolean }> {
  const t0 = Date.now();
  const answers: WireMessage[] = [];
  const probeId = 0xffff_fff0;
  const reading = (async () => {
    for (;;) {
      const m = await c.read(ANSWER_MS).catch(() => null);
      if (!m) return false;
      if (m.type === "Pong" && m.id === probeId) return true;
      answers.push(m);
    }
  })();
  for (let i = 0; i < n; i += BATCH) {
    const frames = Array.from({ length: Math.min(BATCH, n - i) }, (_, k) => encodeFrame(make(i + k)));
    await c.sendRaw(Buffer.concat(frames));
  }
  await c.send({ type: "Ping", ts: nowSecs(), id: probeId });
  const probed = await reading;
  return { answers, secs: (Date.now() - t0) / 1000, probed };
}

/** `n` Pings on one control stream: each gets its Pong, the session goes on. */
export async function pingFlood(row: PhaseRow, v: Victim, n: number): Promise<void> {
  const { a, c } = await session(v);
  try {
    const r = await controlFlood(c, n, (i) => ({ type: "Ping", ts: nowSecs(), id: i }));
    const pongs = r.answers.filter((m) => m.type === "Pong").length;
    row.attempts += n;
    count(row, "ping flood: Pong", pongs);
    row.notes.push(`ping flood: ${n} Pings answered in ${r.secs.toFixed(1)} s (${Math.round(n / r.secs)}/s)`);
    expect(row, pongs === n && r.probed, `every Ping of the flood answered, session kept (${pongs} of ${n})`);
  } finally {
    c.close();
    await a.close();
  }
}

/** `n` Error frames on one control stream: no answer, the session goes on; the log they cost is noted. */
export async function errorFrameFlood(row: PhaseRow, v: Victim, n: number): Promise<void> {
  const { a, c } = await session(v);
  try {
    const logBefore = v.daemon.stderr().length;
    const r = await controlFlood(c, n, () => ({ type: "Error", code: ProtocolCode.ERR_INTERNAL, message: "flood" }));
    const logged = v.daemon.stderr().length - logBefore;
    row.attempts += n;
    count(row, "Error-frame flood: answered", r.answers.length);
    row.notes.push(
      `Error-frame flood: ${n} frames in ${r.secs.toFixed(1)} s; the daemon logged ${logged} bytes ` +
        `(${(logged / n).toFixed(0)} per frame)`,
    );
    expect(row, r.answers.length === 0 && r.probed, `Error frames get no answer, session kept (${r.answers.length})`);
    // Logged within a budget (a few lines a minute per session), not a line per frame.
    expect(row, logged < n, `the flood costs less than a byte of log per frame (${logged} bytes)`);
  } finally {
    c.close();
    await a.close();
  }
}
