import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { isIPv6 } from "node:net";
import fc from "fast-check";
import { encode as encodeMsgpack } from "@msgpack/msgpack";
import {
  decodeFrame,
  encodeFrame,
  FrameReader,
  HEADER_LEN,
  isAddress,
  isJsonText,
  isRelayAddress,
  Limits,
  MsgType,
  type MsgTypeName,
  type OperatorInfo,
  parseIPv6,
  type PeerRecord,
  type SignedRecord,
  TRUST_LEVELS,
  utf8Length,
  WireError,
  type WireMessage,
} from "../src/wire/index.ts";

const RUNS = 1000;

// ---------------------------------------------------------------------------------------------
// Arbitraries generating valid messages of every type

const toHex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
const nodeId = bytes(32).map((b) => "atlas_" + toHex(b));
const msgId = fc.uuid().map((u) => "msg_" + u);
const timestamp = fc.oneof(fc.integer({ min: 1_600_000_000, max: 2_000_000_000 }), fc.maxSafeInteger());
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const isWellFormed = (s: string) => (s as unknown as { isWellFormed(): boolean }).isWellFormed();

/** Strings of at most `max` UTF-8 bytes: ASCII up to the limit, or any code points. */
function text(max: number): fc.Arbitrary<string> {
  return fc
    .oneof(
      fc.string({ unit: "grapheme-ascii", maxLength: max }),
      fc.string({ unit: "binary", maxLength: Math.max(1, Math.floor(max / 4)) }),
      fc.string({ unit: "grapheme", maxLength: Math.max(1, Math.floor(max / 8)) }),
    )
    .filter((s) => utf8Length(s) <= max);
}
const usernameArb = text(32).filter((s) => !s.includes("@"));

const port = fc.integer({ min: 1, max: 65535 });
const address = fc
  .oneof(
    fc.tuple(fc.ipV4(), port).map(([h, p]) => `${h}:${p}`),
    fc.tuple(fc.ipV6(), port).map(([h, p]) => `[${h}]:${p}`),
    fc.tuple(fc.domain(), port).map(([h, p]) => `${h}:${p}`),
  )
  .filter((a) => isAddress(a));
const relayAddress = fc.oneof(address, fc.tuple(nodeId, address).map(([id, a]) => `${id}@${a}`));
const skills = fc.array(text(Limits.SKILL_BYTES), { maxLength: Limits.SKILLS });
const addrs = fc.array(address, { maxLength: 4 });
const relays = fc.array(relayAddress, { maxLength: 4 });
const jsonBody = fc.oneof(
  fc.json({ maxDepth: 4 }),
  fc.json({ maxDepth: 2, stringUnit: "binary" }),
  fc.bigInt().map((n) => `{"n": ${n}}`),
).filter(isWellFormed);

const operator: fc.Arbitrary<OperatorInfo> = fc.record({
  fid: fc.maxSafeNat(),
  username: usernameArb,
  custody_address: fc.string({ maxLength: 42 }),
  message: text(600),
  signature: fc.string({ maxLength: 132 }),
}, { noNullPrototype: true });
const signedRecord: fc.Arbitrary<SignedRecord> = fc.record({
  data: fc.uint8Array({ maxLength: 300 }),
  signature: bytes(64),
}, { noNullPrototype: true });
const peerRecord: fc.Arbitrary<PeerRecord> = fc.record(
  {
    node_id: nodeId,
    public_key: bytes(32),
    address,
    public_address: address,
    relays,
    name: text(Limits.NAME_BYTES),
    skills,
    operator_username: usernameArb,
    last_seen: timestamp,
    record: signedRecord,
  },
  {
    requiredKeys: ["node_id", "public_key", "address", "relays", "name", "skills", "last_seen"],
    noNullPrototype: true,
  },
);

/** Builds `{type, ...fields}` where keys of `optional` may be left out (never set to undefined). */
function msg<N extends MsgTypeName>(
  type: N,
  required: Record<string, fc.Arbitrary<unknown>>,
  optional: Record<string, fc.Arbitrary<unknown>> = {},
): fc.Arbitrary<WireMessage> {
  return fc
    .record({ ...required, ...optional }, { requiredKeys: Object.keys(required) })
    .map((fields) => ({ type, ...fields }) as unknown as WireMessage);
}

const helloCommon = {
  node_id: nodeId,
  name: text(Limits.NAME_BYTES),
  skills,
  public_key: bytes(32),
  protocol_v: fc.oneof(fc.constant(1), u32),
  timestamp,
  challenge: bytes(32),
};
const helloOptional = {
  operator,
  wallet: fc.string({ maxLength: 42 }),
  listen_addrs: addrs,
  relays,
  agent: text(Limits.AGENT_BYTES),
  features: fc.array(text(Limits.FEATURE_BYTES), { maxLength: Limits.FEATURES }),
};

export const arbitraries: Record<MsgTypeName, fc.Arbitrary<WireMessage>> = {
  Hello: msg("Hello", helloCommon, helloOptional),
  HelloAck: msg("HelloAck", { ...helloCommon, signature: bytes(64) }, { ...helloOptional, observed_addr: address }),
  Verify: msg("Verify", { signature: bytes(64), challenge: bytes(32) }),
  VerifyAck: msg(
    "VerifyAck",
    { status: fc.constantFrom("ok", "rejected") },
    { reason: text(200), trust_level: fc.constantFrom(...TRUST_LEVELS) },
  ),
  Message: msg(
    "Message",
    { id: msgId, from: nodeId, to: nodeId, timestamp, body: jsonBody },
    { reply_to: msgId, topic: text(Limits.TOPIC_BYTES) },
  ),
  MessageAck: msg("MessageAck", { status: fc.constantFrom("received", "registered") }, { msg_id: msgId }),
  BootstrapRegister: msg(
    "BootstrapRegister",
    { node_id: nodeId, address, timestamp },
    { public_address: address, record: signedRecord },
  ),
  BootstrapDiscover: msg(
    "BootstrapDiscover",
    {},
    { skill: text(Limits.SKILL_BYTES), operator: usernameArb, limit: fc.integer({ min: 1, max: 0xffffffff }) },
  ),
  BootstrapPeers: msg("BootstrapPeers", { peers: fc.array(peerRecord, { maxLength: 5 }) }),
  RelayAnnounce: msg("RelayAnnounce", { node_id: nodeId, timestamp }),
  RelayConnect: msg("RelayConnect", { source_id: nodeId, target_id: nodeId }, { session: u32 }),
  RelayReady: msg("RelayReady", { status: fc.constantFrom("waiting", "ready") }, { session: u32 }),
  RelayError: msg("RelayError", { code: u32, reason: text(300) }),
  Error: msg("Error", { code: u32, message: text(300) }, { ref_msg_id: msgId }),
  PunchOffer: msg("PunchOffer", {
    nonce: bytes(Limits.NONCE_BYTES),
    candidates: fc.array(address, { maxLength: Limits.PUNCH_CANDIDATES }),
    attempt: u32,
  }),
  PunchAnswer: msg("PunchAnswer", {
    nonce: bytes(Limits.NONCE_BYTES),
    candidates: fc.array(address, { maxLength: Limits.PUNCH_CANDIDATES }),
  }),
  PunchSync: msg("PunchSync", { nonce: bytes(Limits.NONCE_BYTES) }),
  Ping: msg("Ping", { ts: timestamp, id: u32 }),
  Pong: msg("Pong", { ts: timestamp, echo: timestamp, id: u32 }),
  Disconnect: msg("Disconnect", { reason: text(Limits.DISCONNECT_REASON_BYTES), message: text(300) }),
};
export const anyMessage = fc.oneof(...Object.values(arbitraries));

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Runs `fn`; anything thrown must be a WireError with a wire code. */
function onlyWireErrors<T>(fn: () => T): T | WireError {
  try {
    return fn();
  } catch (e) {
    if (!(e instanceof WireError)) throw new Error(`non-WireError thrown: ${String(e)}`, { cause: e });
    assert.ok([1001, 2002, 2003].includes(e.wireCode), `wireCode ${e.wireCode}`);
    assert.ok(e.message.length > 0);
    return e;
  }
}

// ---------------------------------------------------------------------------------------------

describe("round trips (fast-check)", () => {
  for (const [name, arb] of Object.entries(arbitraries)) {
    test(`${name}: decode(encode(m)) deep-equals m`, () => {
      fc.assert(
        fc.property(arb, (m) => {
          const f = encodeFrame(m);
          assert.equal(f[3], MsgType[name as MsgTypeName]);
          assert.equal(new DataView(f.buffer, f.byteOffset).getUint32(4), f.length - HEADER_LEN);
          const d = decodeFrame(f);
          assert.deepStrictEqual(d, m);
          assert.deepEqual(encodeFrame(d), f);
        }),
        { numRuns: 200 },
      );
    });
  }

  test("FrameReader returns any sequence of frames split anywhere", () => {
    fc.assert(
      fc.property(
        fc.array(anyMessage, { minLength: 1, maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        (msgs, cuts) => {
          const all = concat(msgs.map((m) => encodeFrame(m)));
          const points = [...new Set(cuts.map((c) => c % (all.length + 1)))].sort((a, b) => a - b);
          const r = new FrameReader();
          const out: WireMessage[] = [];
          let prev = 0;
          for (const p of [...points, all.length]) {
            r.push(all.subarray(prev, p));
            prev = p;
            for (let m = r.next(); m !== null; m = r.next()) out.push(m);
          }
          assert.deepStrictEqual(out, msgs);
          assert.equal(r.buffered, 0);
          assert.equal(r.hasPartial, false);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("robustness (fast-check)", () => {
  const types = Object.values(MsgType);
  const withHeader = (type: number, payload: Uint8Array, length = payload.length, version = 1) => {
    const f = new Uint8Array(HEADER_LEN + payload.length);
    f.set([0xac, 0x01, version, type]);
    new DataView(f.buffer).setUint32(4, length);
    f.set(payload, HEADER_LEN);
    return f;
  };

  test("random bytes make decodeFrame and FrameReader throw only WireError", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
        onlyWireErrors(() => decodeFrame(b));
        const r = new FrameReader();
        r.push(b);
        onlyWireErrors(() => {
          while (r.next() !== null);
        });
      }),
      { numRuns: RUNS },
    );
  });

  test("a valid header with a random payload gives only WireError", () => {
    fc.assert(
      fc.property(fc.constantFrom(...types), fc.uint8Array({ maxLength: 300 }), (t, p) => {
        onlyWireErrors(() => decodeFrame(withHeader(t, p)));
      }),
      { numRuns: RUNS },
    );
  });

  test("random MessagePack maps as payloads give only WireError", () => {
    const value = fc.letrec((tie) => ({
      v: fc.oneof(
        { depthSize: "small", withCrossShrink: true },
        fc.constant(null),
        fc.boolean(),
        fc.integer(),
        fc.double(),
        fc.bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n }),
        fc.string(),
        fc.uint8Array({ maxLength: 70 }),
        fc.array(tie("v"), { maxLength: 4 }),
        fc.dictionary(fc.string({ maxLength: 12 }), tie("v"), { maxKeys: 4 }),
      ),
    })).v;
    // field names the schemas use, so that random maps hit the validators
    const keys = fc.constantFrom(
      "node_id",
      "name",
      "skills",
      "public_key",
      "protocol_v",
      "timestamp",
      "challenge",
      "signature",
      "operator",
      "listen_addrs",
      "relays",
      "status",
      "id",
      "from",
      "to",
      "body",
      "peers",
      "session",
      "code",
      "reason",
      "message",
      "ts",
      "echo",
      "limit",
      "record",
      "address",
      "data",
      "fid",
    );
    fc.assert(
      fc.property(fc.constantFrom(...types), fc.dictionary(keys, value, { maxKeys: 8 }), (t, map) => {
        let payload: Uint8Array;
        try {
          payload = encodeMsgpack(map);
        } catch {
          return; // not encodable (e.g. bigint out of int64/uint64 range)
        }
        onlyWireErrors(() => decodeFrame(withHeader(t, payload)));
      }),
      { numRuns: RUNS },
    );
  });

  type Mutation =
    | { kind: "flip"; at: number; bit: number }
    | { kind: "truncate"; at: number }
    | { kind: "length"; delta: number }
    | { kind: "set"; at: number; value: number }
    | { kind: "insert"; at: number; value: number }
    | { kind: "delete"; at: number };
  const mutation: fc.Arbitrary<Mutation> = fc.oneof(
    fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
    fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
    fc.record({ kind: fc.constant("length" as const), delta: fc.integer({ min: -300, max: 300 }) }),
    fc.record({ kind: fc.constant("set" as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ kind: fc.constant("insert" as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ kind: fc.constant("delete" as const), at: fc.nat() }),
  );
  function mutate(f: Uint8Array, muts: Mutation[]): Uint8Array {
    let b: Uint8Array = f.slice();
    for (const m of muts) {
      const at = b.length === 0 ? 0 : ("at" in m ? m.at % b.length : 0);
      switch (m.kind) {
        case "flip":
          if (b.length) b[at]! ^= 1 << m.bit;
          break;
        case "truncate":
          b = b.slice(0, at);
          break;
        case "length":
          if (b.length >= 8) {
            const dv = new DataView(b.buffer, b.byteOffset);
            dv.setUint32(4, Math.max(0, dv.getUint32(4) + m.delta));
          }
          break;
        case "set":
          if (b.length) b[at] = m.value;
          break;
        case "insert":
          b = concat([b.subarray(0, at), new Uint8Array([m.value]), b.subarray(at)]);
          break;
        case "delete":
          b = concat([b.subarray(0, at), b.subarray(at + 1)]);
          break;
      }
    }
    return b;
  }

  test("mutated valid frames give only WireError in both decoders", () => {
    fc.assert(
      fc.property(anyMessage, fc.array(mutation, { minLength: 1, maxLength: 4 }), fc.nat(), (m, muts, split) => {
        const f = mutate(encodeFrame(m), muts);
        const d = onlyWireErrors(() => decodeFrame(f));
        if (!(d instanceof WireError)) {
          // whatever decodes is a valid message: it re-encodes and decodes to itself
          assert.deepStrictEqual(decodeFrame(encodeFrame(d)), d);
        }
        const r = new FrameReader();
        const cut = f.length === 0 ? 0 : split % f.length;
        onlyWireErrors(() => {
          r.push(f.subarray(0, cut));
          while (r.next() !== null);
          r.push(f.subarray(cut));
          while (r.next() !== null);
        });
      }),
      { numRuns: RUNS },
    );
  });

  test("oversized length headers are refused with 2002 by both decoders", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...types),
        fc.integer({ min: 1, max: 0xffffffff }),
        fc.integer({ min: 0, max: 0xffffffff }),
        (t, limit, len) => {
          fc.pre(len > limit);
          const h = withHeader(t, new Uint8Array(0), len);
          assert.throws(() => decodeFrame(h, limit), (e: unknown) => e instanceof WireError && e.wireCode === 2002);
          const r = new FrameReader(limit);
          r.push(h);
          assert.throws(() => r.next(), (e: unknown) => e instanceof WireError && e.wireCode === 2002);
          assert.equal(r.buffered, HEADER_LEN);
        },
      ),
      { numRuns: RUNS },
    );
  });
});

describe("validators (fast-check)", () => {
  const jsonOk = (s: string) => {
    try {
      JSON.parse(s);
      return true;
    } catch {
      return false;
    }
  };

  test("isJsonText agrees with JSON.parse", () => {
    const jsonish = fc.oneof(
      fc.json(),
      fc.json().map((s) => s.replace(/,/, ",,")),
      fc.tuple(fc.json(), fc.nat(), fc.constantFrom(...'{}[],:"\\ -+.eE0123456789tfnu\n\t\u0001x')).map(
        ([s, i, c]) => s.slice(0, i % (s.length + 1)) + c + s.slice(i % (s.length + 1)),
      ),
      fc.tuple(fc.json(), fc.nat()).map(([s, i]) => s.slice(0, i % (s.length + 1))),
      fc.string({ unit: fc.constantFrom(...'{}[],:"\\ -+.eE0123456789tfnul\n\r\t') }),
      fc.string(),
    );
    fc.assert(
      fc.property(jsonish, (s) => {
        assert.equal(isJsonText(s), jsonOk(s), JSON.stringify(s));
      }),
      { numRuns: 5000 },
    );
  });

  test("parseIPv6 agrees with node:net isIPv6 (no zone IDs)", () => {
    const v6ish = fc.oneof(
      fc.ipV6(),
      fc.string({ unit: fc.constantFrom(..."0123456789abcdefABCDEF:."), maxLength: 45 }),
      fc.tuple(fc.ipV6(), fc.nat(), fc.constantFrom(..."0:.fg")).map(
        ([s, i, c]) => s.slice(0, i % (s.length + 1)) + c + s.slice(i % (s.length + 1)),
      ),
    );
    fc.assert(
      fc.property(v6ish, (s) => {
        assert.equal(parseIPv6(s) !== null, isIPv6(s), s);
      }),
      { numRuns: 5000 },
    );
  });

  test("generated addresses, relay forms included, parse as valid", () => {
    fc.assert(
      fc.property(relayAddress, (a) => {
        assert.ok(isRelayAddress(a));
      }),
      { numRuns: 300 },
    );
  });

  test("utf8Length matches TextEncoder", () => {
    fc.assert(
      fc.property(
        fc.string({ unit: "binary" }),
        fc.string({ unit: fc.constantFrom("a", "\ud800", "\udc00", "é") }),
        (s, t) => {
          assert.equal(utf8Length(s), new TextEncoder().encode(s).length);
          assert.equal(utf8Length(t), new TextEncoder().encode(t).length);
        },
      ),
      { numRuns: RUNS },
    );
  });
});
