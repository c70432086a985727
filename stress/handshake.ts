/**
 * The handshake attack list (docs/protocol.md#handshake, docs/protocol.md "Handshake") against a real daemon: each
 * attack is made by a hand-driven initiator (test/helpers/handshake-peer.ts) and must end with
 * its code — the Error frame on the control stream and the connection's close code both, or the
 * close code alone where no stream can carry an Error (no control stream), or the reset code of a
 * request stream. One row outcome per attack: `<attack>: expected X, got Y`. The list runs once in
 * the CI pass and in rounds in the long one; a good peer sends throughout.
 *
 * Victim config: `security.handshake_timeout` = 2 s (the silent attacks end sooner),
 * `security.handshakes_per_ip_per_minute` raised to 100 000 (every attack is a connection from
 * 127.0.0.1; the default 30 a minute would refuse them before the handshake), and the request
 * rate limits lifted (NO_RATE_LIMITS: the good peer's 5 a second would pass the default 60 a
 * minute, and rate limits are the floods phase's business).
 */
import { randomBytes } from "node:crypto";
import { ProtocolCode } from "../src/errors.ts";
import { handshakeSignedBytes, ROLE_INITIATOR, ROLE_RESPONDER } from "../src/handshake/signing.ts";
import { type Identity, identityFromSeed } from "../src/identity/identity.ts";
import { generateSeed } from "../src/identity/keys.ts";
import { callDaemon } from "../src/daemon/control-client.ts";
import { homePaths } from "../src/config/paths.ts";
import { encodeFrame } from "../src/wire/frame.ts";
import { HEADER_LEN, MsgType, type Verify } from "../src/wire/messages.ts";
import { AdversarialInitiator, messageFrame, nowSecs, RawConn } from "../test/helpers/handshake-peer.ts";
import { underAttack } from "./attack.ts";
import { count, expect, newRow, type Phase, type PhaseContext, type PhaseRow } from "./harness.ts";
import { NO_RATE_LIMITS, type Victim } from "./victim.ts";

const HANDSHAKE_TIMEOUT_S = 2;
const CONFIG = NO_RATE_LIMITS +
  `[security]\nhandshake_timeout = ${HANDSHAKE_TIMEOUT_S}\nhandshakes_per_ip_per_minute = 100000\n`;
/** Rounds of the whole list in the long run (each round takes a few seconds). */
const MAX_ROUNDS = 20;
/** The daemon's default `security.max_pending_streams`: request streams held before VerifyAck. */
const MAX_PENDING_STREAMS = 8;
const REFUSAL_MS = 5000;
/** RSS after ≤ before + this: a few hundred connections of churn (see the fuzz phase's bound). */
const RSS_BOUND_MIB = 96;
const E = ProtocolCode;

interface Scene {
  v: Victim;
  me: Identity;
  other: Identity;
  a: AdversarialInitiator;
  /** The last honest Verify, for the replay attack. */
  replay: Verify | null;
}

/** What an attack got: a code, or a description of what came instead. */
type Got = number | string;

interface Attack {
  name: string;
  code: number;
  run(s: Scene): Promise<Got>;
}

/** Error frame and close code: the code when both agree, else what each was. */
async function refusal(c: RawConn): Promise<Got> {
  try {
    const { error, close } = await c.expectRefusal(REFUSAL_MS);
    return error.code === close.code ? error.code : `Error ${error.code}, close ${close.code}`;
  } catch (e) {
    const info = await c.closedWithin(REFUSAL_MS);
    return `no Error frame (${(e as Error).message.slice(0, 80)}; close ${info?.code ?? "none"})`;
  } finally {
    c.close();
  }
}

/** Hello → HelloAck, honestly, then `then` instead of an honest Verify. */
async function afterHelloAck(s: Scene, then: (c: RawConn, challenge: Uint8Array) => Promise<void>): Promise<Got> {
  const c = await s.a.connect(s.v.addr);
  await c.send(RawConn.hello(s.me));
  const ack = await c.readHelloAck();
  await then(c, ack.challenge);
  return refusal(c);
}

/** A fresh connection whose first bytes on stream 0 are `send`'s. */
async function first(s: Scene, send: (c: RawConn) => Promise<void>): Promise<Got> {
  const c = await s.a.connect(s.v.addr);
  await send(c);
  return refusal(c);
}

function header(type: number, length: number, version = 1): Uint8Array {
  const h = new Uint8Array(HEADER_LEN);
  h.set([0xac, 0x01, version, type]);
  new DataView(h.buffer).setUint32(4, length);
  return h;
}

const ATTACKS: Attack[] = [
  {
    name: "Hello protocol_v 2",
    code: E.ERR_PROTOCOL_VERSION,
    run: (s) => first(s, (c) => c.send(RawConn.hello(s.me, { protocol_v: 2 }))),
  },
  {
    name: "Hello in envelope version 2",
    code: E.ERR_PROTOCOL_VERSION,
    run: (s) =>
      first(s, (c) => {
        const f = encodeFrame(RawConn.hello(s.me));
        f[2] = 2;
        return c.sendRaw(f);
      }),
  },
  {
    name: "Hello node_id not derived from its public_key",
    code: E.ERR_INVALID_IDENTITY,
    run: (s) => first(s, (c) => c.send(RawConn.hello(s.me, { node_id: s.other.nodeId }))),
  },
  {
    name: "Hello key ≠ TLS certificate key",
    code: E.ERR_HANDSHAKE_FAILED,
    run: (s) => first(s, (c) => c.send(RawConn.hello(s.other))),
  },
  {
    name: "Hello timestamp 1000 s ahead",
    code: E.ERR_HANDSHAKE_FAILED,
    run: (s) => first(s, (c) => c.send(RawConn.hello(s.me, { timestamp: nowSecs() + 1000 }))),
  },
  {
    name: "Hello timestamp 1000 s behind",
    code: E.ERR_HANDSHAKE_FAILED,
    run: (s) => first(s, (c) => c.send(RawConn.hello(s.me, { timestamp: nowSecs() - 1000 }))),
  },
  {
    name: "Hello with a 31-byte public_key",
    code: E.ERR_MESSAGE_REJECTED,
    run: (s) =>
      first(s, (c) => {
        const f = encodeFrame(RawConn.hello(s.me));
        // bin8 of 32 (c4 20) → 31, and the payload one byte shorter: a field of the wrong size
        const at = Buffer.from(f).indexOf(Buffer.concat([Buffer.from([0xc4, 0x20]), Buffer.from(s.me.publicKey)]));
        const out = Buffer.concat([f.subarray(0, at), Buffer.from([0xc4, 0x1f]), f.subarray(at + 2 + 1)]);
        out.writeUInt32BE(out.length - HEADER_LEN, 4);
        return c.sendRaw(out);
      }),
  },
  {
    name: "Hello header declaring 70 000 bytes",
    code: E.ERR_PAYLOAD_TOO_LARGE,
    run: (s) => first(s, (c) => c.sendRaw(Buffer.concat([header(MsgType.Hello, 70_000), Buffer.alloc(1000, 0x41)]))),
  },
  {
    name: "Hello cut short, then FIN",
    code: E.ERR_MESSAGE_REJECTED,
    run: (s) => first(s, (c) => c.control.stream.end(encodeFrame(RawConn.hello(s.me)).subarray(0, 40))),
  },
  {
    name: "Verify as the first frame (before HelloAck)",
    code: E.ERR_NOT_VERIFIED,
    run: (s) =>
      first(s, (c) => c.send({ type: "Verify", signature: new Uint8Array(64), challenge: new Uint8Array(32) })),
  },
  {
    name: "Ping before the handshake",
    code: E.ERR_NOT_VERIFIED,
    run: (s) => first(s, (c) => c.send({ type: "Ping", ts: nowSecs(), id: 1 })),
  },
  {
    name: "Message on the control stream before the handshake",
    code: E.ERR_NOT_VERIFIED,
    run: (s) => first(s, (c) => c.send(messageFrame(s.me.nodeId, s.v.nodeId))),
  },
  {
    name: "VerifyAck from the initiator",
    code: E.ERR_NOT_VERIFIED,
    run: (s) => first(s, (c) => c.send({ type: "VerifyAck", status: "ok", trust_level: "unknown" })),
  },
  {
    name: "duplicate Hello instead of Verify",
    code: E.ERR_NOT_VERIFIED,
    run: (s) => afterHelloAck(s, (c) => c.send(RawConn.hello(s.me))),
  },
  {
    name: "Ping instead of Verify",
    code: E.ERR_NOT_VERIFIED,
    run: (s) => afterHelloAck(s, (c) => c.send({ type: "Ping", ts: nowSecs(), id: 2 })),
  },
  {
    name: "Verify with a random signature",
    code: E.ERR_HANDSHAKE_FAILED,
    run: (s) => afterHelloAck(s, (c, ch) => c.send({ type: "Verify", signature: randomBytes(64), challenge: ch })),
  },
  {
    name: "Verify signed over the bare challenge",
    code: E.ERR_HANDSHAKE_FAILED,
    run: (s) => afterHelloAck(s, (c, ch) => c.send({ type: "Verify", signature: s.me.sign(ch), challenge: ch })),
  },
  {
    name: "Verify signed with the responder's role byte",
    code: E.ERR_HANDSHAKE_FAILED,
    run: (s) =>
      afterHelloAck(s, (c, ch) => {
        const signature = s.me.sign(handshakeSignedBytes(ROLE_RESPONDER, s.me.nodeId, s.v.nodeId, ch));
        return c.send({ type: "Verify", signature, challenge: ch });
      }),
  },
  {
    name: "Verify echoing another challenge",
    code: E.ERR_HANDSHAKE_FAILED,
    run: (s) =>
      afterHelloAck(s, (c, ch) => {
        // signed honestly over the real challenge, but echoing another
        const signature = s.me.sign(handshakeSignedBytes(ROLE_INITIATOR, s.me.nodeId, s.v.nodeId, ch));
        return c.send({ type: "Verify", signature, challenge: randomBytes(32) });
      }),
  },
  {
    name: "Verify replayed from an earlier connection",
    code: E.ERR_HANDSHAKE_FAILED,
    run: async (s) => {
      if (!s.replay) {
        const c = await s.a.connect(s.v.addr);
        s.replay = (await c.completeHandshake(s.me)).verify;
        c.close();
      }
      const replay = s.replay;
      return afterHelloAck(s, (c) => c.send(replay));
    },
  },
  {
    name: "our Error frame (1002) as the first frame",
    code: E.ERR_HANDSHAKE_FAILED,
    run: async (s) => {
      // The responder takes it as our refusal: no Error back, a close with our code.
      const c = await s.a.connect(s.v.addr);
      await c.send({ type: "Error", code: E.ERR_HANDSHAKE_FAILED, message: "no thanks" });
      const info = await c.closedWithin(REFUSAL_MS);
      c.close();
      return info?.code ?? "no close";
    },
  },
  {
    name: `${MAX_PENDING_STREAMS + 1}th request stream before the handshake (stream reset)`,
    code: E.ERR_NOT_VERIFIED,
    run: async (s) => {
      const c = await s.a.connect(s.v.addr);
      void c.control; // stream 0 is ours, unused yet: the rest are request streams held unread
      const streams = [];
      for (let i = 0; i <= MAX_PENDING_STREAMS; i++) {
        streams.push(await c.openRequest(messageFrame(s.me.nodeId, s.v.nodeId)));
      }
      const got = await streams[MAX_PENDING_STREAMS]!.read(REFUSAL_MS).then(
        (m) => `answered ${m?.type ?? "FIN"}`,
        (e: Error) => Number(/StreamReset\((\d+)\)/.exec(e.message)?.[1] ?? NaN) || e.message.slice(0, 60),
      );
      c.close();
      return got;
    },
  },
  {
    name: `silent after HelloAck (handshake_timeout ${HANDSHAKE_TIMEOUT_S} s)`,
    code: E.ERR_HANDSHAKE_TIMEOUT,
    run: (s) => afterHelloAck(s, () => Promise.resolve()),
  },
  {
    name: "QUIC connection that never opens a stream (close code)",
    code: E.ERR_HANDSHAKE_TIMEOUT,
    run: async (s) => {
      const c = await s.a.connect(s.v.addr);
      const info = await c.closedWithin(HANDSHAKE_TIMEOUT_S * 1000 + REFUSAL_MS);
      c.close();
      return info?.code ?? "no close";
    },
  },
];

/** A banned identity's Hello: Error 4001 `banned until …` instead of HelloAck. */
async function bannedAttack(s: Scene): Promise<Got> {
  const banned = identityFromSeed(generateSeed());
  const a = await AdversarialInitiator.create(banned);
  try {
    await callDaemon(homePaths(s.v.home), "net.ban", { target: banned.nodeId, seconds: 600 }, 10_000);
    const c = await a.connect(s.v.addr);
    await c.send(RawConn.hello(banned));
    return await refusal(c);
  } finally {
    await a.close();
  }
}

export const handshakePhase: Phase = {
  name: "handshake",
  run(ctx) {
    const row = newRow(`handshake (${ATTACKS.length + 1} attacks, each with its code)`);
    return underAttack(row, { config: CONFIG, rssBoundMiB: RSS_BOUND_MIB }, (v) => rounds(ctx, row, v));
  },
};

async function rounds(ctx: PhaseContext, row: PhaseRow, v: Victim): Promise<void> {
  const me = identityFromSeed(generateSeed());
  const s: Scene = {
    v,
    me,
    other: identityFromSeed(generateSeed()),
    a: await AdversarialInitiator.create(me),
    replay: null,
  };
  const end = Date.now() + ctx.budgetMs / 2; // a round can take a few seconds: start none past half the budget
  const all: Attack[] = [...ATTACKS, { name: "banned identity's Hello", code: E.ERR_RATE_LIMITED, run: bannedAttack }];
  let n = 0;
  try {
    do {
      n++;
      // The two silent attacks wait out the handshake timeout: run them beside the others.
      const results = await Promise.all(all.map(async (k) => [k, await attempt(k, s)] as const));
      for (const [k, got] of results) record(row, k, got);
    } while (ctx.long && n < MAX_ROUNDS && Date.now() < end);
  } finally {
    await s.a.close();
  }
  row.notes.unshift(`${n} round${n === 1 ? "" : "s"} of ${all.length} attacks`);
}

async function attempt(k: Attack, s: Scene): Promise<Got> {
  try {
    return await k.run(s);
  } catch (e) {
    return `failed: ${(e as Error).message.slice(0, 80)}`;
  }
}

function record(row: PhaseRow, k: Attack, got: Got): void {
  row.attempts++;
  count(row, `${k.name}: expected ${k.code}, got ${got}`);
  expect(row, got === k.code, `${k.name}: expected ${k.code}, got ${got}`);
}
