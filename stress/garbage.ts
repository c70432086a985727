/**
 * Raw UDP at the daemon's QUIC port (stress/garbage-packets.ts): random bytes, QUIC-looking
 * packets and STUN-looking ones, at a bounded rate (1 000 a second, 50 000 at most). The daemon
 * must drop them or answer as QUIC and STUN allow — a Retry for a tokenless Initial, a Version
 * Negotiation for an unsupported version, a Binding response to a valid Binding request and to
 * nothing else — and never send more than 3× the bytes it received (QUIC's anti-amplification
 * bound), while a good peer and an honest session (whose connection ID the garbage reuses from
 * another port) keep working.
 *
 * Victim config: `stun.serve = true`, so the STUN server's parser is under attack too (its answers
 * are rate limited to 20 a second per source address), and the request rate limits lifted
 * (NO_RATE_LIMITS: the good peer's 5 a second would pass the default 60 a minute).
 */
import { createSocket, type Socket } from "node:dgram";
import { identityFromSeed } from "../src/identity/identity.ts";
import { RESETS_PER_SECOND } from "../src/transport/stateless-reset.ts";
import { generateSeed } from "../src/identity/keys.ts";
import { AdversarialInitiator, nowSecs, type RawConn } from "../test/helpers/handshake-peer.ts";
import { underAttack } from "./attack.ts";
import { Rng } from "./fuzz-mutate.ts";
import { answerKind, garbage } from "./garbage-packets.ts";
import { count, expect, newRow, type Phase, type PhaseContext, type PhaseRow } from "./harness.ts";
import { NO_RATE_LIMITS, type Victim } from "./victim.ts";

/**
 * Appended right after the `[stun]` table the test home's config.toml ends with (a second
 * `[stun]` header would be invalid TOML), so the key lands in that table.
 */
const CONFIG = "serve = true\n" + NO_RATE_LIMITS;
const PER_SECOND = 1000;
const MAX_DATAGRAMS = 50_000;
const TICK_MS = 10;
/** The STUN server's answers per source address per second (src/stun/server.ts), and its burst. */
const STUN_PER_IP_PER_SECOND = 20;
const AMPLIFICATION = 3;
/** RSS after ≤ before + this (50 000 datagrams in a minute: +44 MiB measured, most of it heap growth). */
const RSS_BOUND_MIB = 64;
/** Late answers are collected this long after the last datagram. */
const DRAIN_MS = 500;

interface Listener {
  sock: Socket;
  answers: Map<string, number>;
  bytesIn: number;
  stunTxSeen: string[];
}

export const garbagePhase: Phase = {
  name: "garbage",
  run(ctx) {
    const row = newRow("garbage (raw UDP: random, QUIC-looking, STUN-looking datagrams)");
    return underAttack(row, { config: CONFIG, rssBoundMiB: RSS_BOUND_MIB }, (v) => flood(ctx, row, v));
  },
};

async function flood(ctx: PhaseContext, row: PhaseRow, v: Victim): Promise<void> {
  const me = identityFromSeed(generateSeed());
  const a = await AdversarialInitiator.create(me);
  const honest = await honestSession(a, v, me);
  const l = await listen();
  const seed = Number(process.env.STRESS_SEED ?? Date.now() % 1_000_000);
  const r = new Rng(seed);
  const validTx = new Set<string>();
  const mayAnswer = new Set<string>();
  const stunKinds = new Map<string, string>(); // transaction ID → kind, of every STUN-looking datagram
  let bytesOut = 0;
  try {
    const total = Math.min(MAX_DATAGRAMS, Math.floor((ctx.budgetMs * 0.8 * PER_SECOND) / 1000));
    const started = Date.now();
    while (row.attempts < total && Date.now() - started < ctx.budgetMs * 0.9) {
      for (let i = 0; i < (PER_SECOND * TICK_MS) / 1000 && row.attempts < total; i++) {
        const d = garbage(r, honest.dcid);
        if (d.stunTx) validTx.add(d.stunTx);
        if (d.anyTx) stunKinds.set(d.anyTx, d.kind);
        if (d.mayAnswer && d.anyTx) mayAnswer.add(d.anyTx);
        l.sock.send(d.bytes, v.addr.port, v.addr.host);
        bytesOut += d.bytes.length;
        row.attempts++;
        count(row, `sent ${d.kind}`);
      }
      await new Promise((res) => setTimeout(res, TICK_MS));
    }
    await new Promise((res) => setTimeout(res, DRAIN_MS));
    const secs = (Date.now() - started) / 1000;
    for (const [k, n] of l.answers) count(row, `answer: ${k}`, n);
    judge(row, { l, validTx, mayAnswer, stunKinds, bytesOut, secs, seed });
    const pong = await honest.ping();
    expect(row, pong, "the honest session (its connection ID spoofed from another port) still answers a Ping");
  } finally {
    l.sock.close();
    honest.c.close();
    await a.close();
  }
}

function judge(
  row: PhaseRow,
  o: {
    l: Listener;
    validTx: Set<string>;
    mayAnswer: Set<string>;
    stunKinds: Map<string, string>;
    bytesOut: number;
    secs: number;
    seed: number;
  },
): void {
  const stun = o.l.stunTxSeen;
  const strays = stun.filter((tx) => !o.validTx.has(tx) && !o.mayAnswer.has(tx));
  const stray = strays.length;
  for (const tx of strays) count(row, `STUN answer to: ${o.stunKinds.get(tx) ?? "nothing we sent"}`);
  const cap = Math.ceil(o.secs * STUN_PER_IP_PER_SECOND) + STUN_PER_IP_PER_SECOND;
  row.notes.push(
    `${row.attempts} datagrams (${o.bytesOut} bytes) in ${o.secs.toFixed(1)} s, seed ${o.seed}; ` +
      `${o.l.bytesIn} bytes came back; ${stun.length} STUN answers to ${o.validTx.size} valid Binding requests`,
  );
  expect(row, stray === 0, `STUN answers only to valid Binding requests (${stray} to others)`);
  expect(row, o.validTx.size === 0 || stun.length > 0, "the STUN server (stun.serve) answers valid requests");
  expect(row, stun.length <= cap, `STUN answers within the per-address limit (${stun.length} ≤ ${cap})`);
  const resets = o.l.answers.get("short header (stateless reset)") ?? 0;
  const resetCap = Math.ceil(o.secs * RESETS_PER_SECOND) + RESETS_PER_SECOND;
  expect(row, resets <= resetCap, `stateless resets within their rate (${resets} ≤ ${resetCap})`);
  expect(
    row,
    o.l.bytesIn <= AMPLIFICATION * o.bytesOut,
    `no amplification: ${o.l.bytesIn} bytes back ≤ ${AMPLIFICATION} × ${o.bytesOut}`,
  );
}

/** The socket the garbage leaves from; it counts what comes back. */
async function listen(): Promise<Listener> {
  const sock = createSocket("udp4");
  const l: Listener = { sock, answers: new Map(), bytesIn: 0, stunTxSeen: [] };
  sock.on("message", (m) => {
    const kind = answerKind(m);
    l.answers.set(kind, (l.answers.get(kind) ?? 0) + 1);
    l.bytesIn += m.length;
    if (kind === "STUN") l.stunTxSeen.push(m.subarray(8, 20).toString("hex"));
  });
  sock.on("error", () => {});
  await new Promise<void>((res) => sock.bind(0, "127.0.0.1", () => res()));
  return l;
}

/**
 * An honest session, and the connection ID the daemon knows it by (the destination ID of our
 * short-header packets, read off the first one we send).
 */
async function honestSession(a: AdversarialInitiator, v: Victim, me: ReturnType<typeof identityFromSeed>) {
  let dcid: Uint8Array | null = null;
  const send = a.endpoint.sendPacket.bind(a.endpoint);
  a.endpoint.sendPacket = (p, to) => {
    if (!dcid && (p[0]! & 0xc0) === 0x40) dcid = p.slice(1, 17);
    send(p, to);
  };
  const c: RawConn = await a.connect(v.addr);
  await c.completeHandshake(me);
  const ping = async (): Promise<boolean> => {
    try {
      await c.send({ type: "Ping", ts: nowSecs(), id: 77 });
      for (;;) {
        const m = await c.read(5000);
        if (!m) return false;
        if (m.type === "Pong" && m.id === 77) return true;
      }
    } catch {
      return false;
    }
  };
  return {
    c,
    ping,
    get dcid() {
      return dcid;
    },
  };
}
