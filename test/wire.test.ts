import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { encode as mpEncode, Encoder } from "@msgpack/msgpack";
import { withFastStrings } from "../src/wire/msgpack-strings.ts";
import {
  decodeFrame,
  DISCONNECT_SHUTDOWN,
  encodeFrame,
  FRAME_MAGIC,
  FrameReader,
  HEADER_LEN,
  isAddress,
  isJsonText,
  isMsgId,
  isNodeId,
  isRelayAddress,
  MAX_PAYLOAD,
  MsgType,
  type MsgTypeName,
  parseHostPort,
  PRE_HANDSHAKE_MAX_PAYLOAD,
  utf8Length,
  WIRE_VERSION,
  WireError,
  type WireMessage,
} from "../src/wire/index.ts";
import { AtlasError, ProtocolCode } from "../src/errors.ts";

const A = "atlas_" + "0123456789abcdef".repeat(4);
const B = "atlas_" + "fedcba9876543210".repeat(4);
const key = (n: number) => new Uint8Array(32).fill(n);
const sig = (n: number) => new Uint8Array(64).fill(n);
const MID = "msg_0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
const operator = {
  fid: 1234,
  username: "alice",
  custody_address: "0x" + "ab".repeat(20),
  message: "example.com wants you to sign in with your Ethereum account:\n0x...",
  signature: "0x" + "cd".repeat(65),
};

/** One or more hand-written samples of every message type. */
export const samples: WireMessage[] = [
  {
    type: "Hello",
    node_id: A,
    name: "alice-agent",
    skills: ["search", "summarize"],
    public_key: key(1),
    protocol_v: 1,
    timestamp: 1763856000,
    challenge: key(2),
  },
  {
    type: "Hello",
    node_id: A,
    name: "名前",
    skills: [],
    operator,
    wallet: "0x" + "12".repeat(20),
    public_key: key(1),
    protocol_v: 1,
    timestamp: 1763856000,
    challenge: key(2),
    listen_addrs: ["192.0.2.1:4433", "[2001:db8::1]:4433", "node.example.com:9"],
    relays: ["relay.example.com:4433", `${B}@[2001:db8::2]:443`],
    agent: "atlas/0.1.0",
  },
  {
    type: "HelloAck",
    node_id: B,
    name: "bob",
    skills: ["x"],
    public_key: key(3),
    protocol_v: 1,
    timestamp: 1763856001,
    challenge: key(4),
    signature: sig(5),
    observed_addr: "203.0.113.7:55555",
    listen_addrs: ["[::1]:4433"],
    relays: [],
  },
  { type: "Verify", signature: sig(6), challenge: key(4) },
  { type: "VerifyAck", status: "ok", trust_level: "unknown" },
  { type: "VerifyAck", status: "rejected", reason: "bad signature" },
  {
    type: "Message",
    id: MID,
    from: A,
    to: B,
    timestamp: 1763856002,
    body: JSON.stringify({ text: "hi", n: 12345678901234567890 }),
  },
  {
    type: "Message",
    id: MID,
    from: A,
    to: B,
    timestamp: 1763856002,
    reply_to: "msg_00000000-0000-4000-8000-000000000000",
    topic: "greetings",
    body: '{"big": 123456789012345678901234567890}',
  },
  { type: "MessageAck", msg_id: MID, status: "received" },
  { type: "MessageAck", status: "registered" },
  { type: "BootstrapRegister", node_id: A, address: "198.51.100.4:4433", timestamp: 1763856003 },
  {
    type: "BootstrapRegister",
    node_id: A,
    address: "10.0.0.4:4433",
    public_address: "198.51.100.4:4433",
    timestamp: 1763856003,
    record: { data: new Uint8Array([0x81, 0xa1, 0x61, 0x01]), signature: sig(7) },
  },
  { type: "BootstrapDiscover" },
  { type: "BootstrapDiscover", skill: "search", operator: "alice", limit: 500 },
  { type: "BootstrapPeers", peers: [] },
  {
    type: "BootstrapPeers",
    peers: [
      {
        node_id: A,
        public_key: key(1),
        address: "198.51.100.4:4433",
        relays: [],
        name: "alice",
        skills: ["search"],
        last_seen: 1763856000,
      },
      {
        node_id: B,
        public_key: key(3),
        address: "[2001:db8::5]:4433",
        public_address: "203.0.113.9:1",
        relays: ["relay.example.com:4433"],
        name: "",
        skills: [],
        operator_username: "bob",
        last_seen: 0,
        record: { data: new Uint8Array(0), signature: sig(8) },
      },
    ],
  },
  { type: "RelayAnnounce", node_id: A, timestamp: 1763856004 },
  { type: "RelayConnect", source_id: B, target_id: A },
  { type: "RelayConnect", source_id: B, target_id: A, session: 0xffffffff },
  { type: "RelayReady", status: "waiting" },
  { type: "RelayReady", status: "ready", session: 0 },
  { type: "RelayError", code: 1, reason: "target not registered" },
  {
    type: "PunchOffer",
    nonce: new Uint8Array(12).fill(7),
    candidates: ["198.51.100.7:4433", "[2001:db8::1]:4433"],
    attempt: 1,
  },
  { type: "PunchAnswer", nonce: new Uint8Array(12).fill(7), candidates: ["203.0.113.5:50123"] },
  { type: "PunchSync", nonce: new Uint8Array(12).fill(7) },
  { type: "Error", code: 2003, message: "malformed frame" },
  { type: "Error", code: 4001, message: "rate limited", ref_msg_id: MID },
  { type: "Ping", ts: 1763856000, id: 7 },
  { type: "Pong", ts: 1763856001, echo: 1763856000, id: 7 },
  { type: "Disconnect", reason: DISCONNECT_SHUTDOWN, message: "operator requested disconnect" },
  { type: "Disconnect", reason: "SOMETHING_NEW", message: "" },
];

/** A frame around an arbitrary payload. */
function frame(type: number, payload: Uint8Array, version = WIRE_VERSION, length = payload.length): Uint8Array {
  const f = new Uint8Array(HEADER_LEN + payload.length);
  f[0] = 0xac;
  f[1] = 0x01;
  f[2] = version;
  f[3] = type;
  new DataView(f.buffer).setUint32(4, length);
  f.set(payload, HEADER_LEN);
  return f;
}

function wireErr(code: number, re?: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof WireError, `expected WireError, got ${String(e)}`);
    assert.ok(e instanceof AtlasError);
    assert.equal(e.wireCode, code, `wireCode of "${e.message}"`);
    if (re) assert.match(e.message, re);
    return true;
  };
}

function payloadOf(m: WireMessage): Record<string, unknown> {
  const { type: _t, ...rest } = m as unknown as Record<string, unknown>;
  return rest;
}

describe("constants", () => {
  test("the envelope constants are those of the protocol", () => {
    assert.deepEqual([...FRAME_MAGIC], [0xac, 0x01]);
    assert.equal(WIRE_VERSION, 1);
    assert.equal(HEADER_LEN, 8);
    assert.equal(MAX_PAYLOAD, 4194304);
    assert.equal(PRE_HANDSHAKE_MAX_PAYLOAD, 65536);
    assert.equal(MsgType.Error, 0xe0);
    assert.equal(MsgType.Disconnect, 0xff);
  });
  test("every message type has a sample frame in the test", () => {
    const seen = new Set(samples.map((s) => s.type));
    for (const name of Object.keys(MsgType) as MsgTypeName[]) assert.ok(seen.has(name), name);
  });
});

describe("encode/decode", () => {
  test("strings encode to the library's own bytes on the fast path, short and long, in every script", () => {
    const alphabet = [
      "a",
      "Z",
      "0",
      "~",
      " ",
      "é",
      "ß",
      "Ж",
      "名",
      "한",
      "\u0800",
      "\uffff",
      "😀",
      "𝄞",
      "\u007f",
      "\u0080",
    ];
    let seed = 17;
    const rnd = (n: number) => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n;
    const text = (len: number, chars: number) => Array.from({ length: len }, () => alphabet[rnd(chars)]).join("");
    const fast = withFastStrings(new Encoder());
    assert.notEqual(fast.encode, undefined);
    assert.notEqual(
      (fast as unknown as { encodeString: unknown }).encodeString,
      (new Encoder() as unknown as { encodeString: unknown }).encodeString,
      "the fast path is installed (a library update that renamed its members would leave it out)",
    );
    const cases: string[] = ["", "a", "x".repeat(31), "x".repeat(32), "x".repeat(63), "x".repeat(64), "x".repeat(255)];
    for (const len of [1, 5, 31, 32, 50, 51, 63, 64, 200, 255, 256, 1000, 65535, 65536, 100_000]) {
      cases.push(text(len, 4), text(len, alphabet.length)); // ASCII only, then mixed
    }
    for (const s of cases) {
      const obj = { k: s, body: s, n: 7 };
      assert.deepEqual(fast.encode(obj), mpEncode(obj), `a string of ${s.length} units differs`);
    }
    // and through the frame encoder, which holds one
    const m: WireMessage = {
      type: "Message",
      id: MID,
      from: A,
      to: B,
      timestamp: 1,
      body: JSON.stringify({ t: text(3000, 16) }),
    };
    const f = encodeFrame(m);
    assert.deepEqual(f.subarray(HEADER_LEN), mpEncode({ id: MID, from: A, to: B, timestamp: 1, body: m.body }));
  });

  test("a Ping encodes to its known bytes", () => {
    const f = encodeFrame({ type: "Ping", ts: 1763856000, id: 7 });
    // header: magic, version 1, type 0xf0, length 13
    // payload: fixmap(2) "ts" uint32 0x69224e80, "id" 7
    const expected = [
      0xac,
      0x01,
      0x01,
      0xf0,
      0x00,
      0x00,
      0x00,
      0x0d,
      0x82,
      0xa2,
      0x74,
      0x73,
      0xce,
      0x69,
      0x22,
      0x4e,
      0x80,
      0xa2,
      0x69,
      0x64,
      0x07,
    ];
    assert.deepEqual([...f], expected);
    assert.deepEqual(decodeFrame(new Uint8Array(expected)), { type: "Ping", ts: 1763856000, id: 7 });
  });

  test("a Verify encodes its fields in order and its bytes as MessagePack bin", () => {
    const f = encodeFrame({ type: "Verify", signature: sig(0x11), challenge: key(0x22) });
    assert.equal(f[3], 0x03);
    const p = f.subarray(8);
    // fixmap 2, "signature" bin8(64) ..., "challenge" bin8(32) ...
    assert.equal(p[0], 0x82);
    assert.deepEqual([...p.subarray(1, 11)], [0xa9, ...new TextEncoder().encode("signature")]);
    assert.deepEqual([...p.subarray(11, 13)], [0xc4, 64]);
    assert.equal(new DataView(f.buffer).getUint32(4), p.length);
  });

  for (const [i, m] of samples.entries()) {
    test(`round trip #${i} ${m.type}`, () => {
      const f = encodeFrame(m);
      assert.equal(f[3], MsgType[m.type]);
      const d = decodeFrame(f);
      assert.deepStrictEqual(d, m);
      // decoding also works through a Buffer and yields plain Uint8Arrays owning their bytes
      const d2 = decodeFrame(Buffer.from(f));
      assert.deepStrictEqual(d2, m);
      // re-encoding is byte-identical
      assert.deepEqual(encodeFrame(d), f);
    });
  }

  test("decoded byte fields are copies, not views of the frame", () => {
    const f = encodeFrame(samples[3]!);
    const d = decodeFrame(f) as Extract<WireMessage, { type: "Verify" }>;
    assert.equal(Object.getPrototypeOf(d.signature), Uint8Array.prototype);
    f.fill(0);
    assert.deepEqual(d.signature, sig(6));
  });

  test("encoding omits undefined optional fields and drops fields the schema does not name", () => {
    const m = { type: "MessageAck", status: "received", msg_id: undefined, extra: 5 } as unknown as WireMessage;
    const f = encodeFrame(m);
    assert.deepEqual(decodeFrame(f), { type: "MessageAck", status: "received" });
    assert.deepEqual([...f.subarray(8)], [...mpEncode({ status: "received" })]);
  });

  test("an int64 timestamp is accepted when it fits a safe integer", () => {
    // uint64 and int64 encodings of small and large values
    const p = new Uint8Array([
      0x82,
      0xa2,
      0x74,
      0x73,
      0xcf,
      0,
      0,
      0,
      0,
      0x69,
      0x22,
      0x4e,
      0x80,
      0xa2,
      0x69,
      0x64,
      0xd3,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      7,
    ]);
    assert.deepEqual(decodeFrame(frame(0xf0, p)), { type: "Ping", ts: 1763856000, id: 7 });
    const big = new Uint8Array([0x82, 0xa2, 0x74, 0x73, 0xcf, 0xff, 0, 0, 0, 0, 0, 0, 0, 0xa2, 0x69, 0x64, 0x07]);
    assert.throws(() => decodeFrame(frame(0xf0, big)), wireErr(2003, /Ping\.ts must be a safe integer/));
    // large safe timestamps round-trip
    const m: WireMessage = { type: "Pong", ts: Number.MAX_SAFE_INTEGER, echo: -5, id: 0 };
    assert.deepEqual(decodeFrame(encodeFrame(m)), m);
  });

  test("encodeFrame refuses a message that does not match its schema", () => {
    const bad = [
      { type: "Ping", ts: 1.5, id: 1 },
      { type: "Ping", ts: 1, id: -1 },
      { type: "Ping", ts: 1, id: 2 ** 32 },
      { type: "Hello", ...payloadOf(samples[0]!), public_key: new Uint8Array(31) },
      { type: "Message", ...payloadOf(samples[6]!), body: "{not json" },
      { type: "Nope" },
      { type: "VerifyAck", status: "maybe" },
    ];
    for (const m of bad) {
      assert.throws(() => encodeFrame(m as unknown as WireMessage), wireErr(2003), JSON.stringify(m));
    }
    assert.throws(
      () => encodeFrame({ type: "Hello", ...payloadOf(samples[0]!), public_key: new Uint8Array(31) } as WireMessage),
      wireErr(2003, /^Hello\.public_key must be 32 bytes$/),
    );
  });

  test("encodeFrame refuses a payload above the limit with 2002", () => {
    const body = JSON.stringify("x".repeat(MAX_PAYLOAD));
    const m = { ...(samples[6] as Extract<WireMessage, { type: "Message" }>), body };
    assert.throws(() => encodeFrame(m), wireErr(2002));
    const small = { ...m, body: JSON.stringify("x".repeat(70000)) };
    assert.throws(() => encodeFrame(small, PRE_HANDSHAKE_MAX_PAYLOAD), wireErr(2002));
    assert.equal(decodeFrame(encodeFrame(small)).type, "Message");
  });

  test("a 4 MiB frame (exactly at the limit) decodes", () => {
    const m = { ...(samples[6] as Extract<WireMessage, { type: "Message" }>), body: "" };
    const overhead = encodeFrame({ ...m, body: JSON.stringify("x".repeat(70000)) }).length - 8 - 70002;
    const n = MAX_PAYLOAD - overhead - 2; // both bodies use a str32 header
    const f = encodeFrame({ ...m, body: JSON.stringify("y".repeat(n)) });
    assert.equal(f.length - 8, MAX_PAYLOAD);
    assert.equal((decodeFrame(f) as { body: string }).body.length, n + 2);
    assert.throws(() => decodeFrame(f, MAX_PAYLOAD - 1), wireErr(2002));
  });
});

describe("decode errors", () => {
  const ping = encodeFrame({ type: "Ping", ts: 1, id: 2 });

  test("a frame with bad magic is refused with 2003", () => {
    const f = ping.slice();
    f[0] = 0xab;
    assert.throws(() => decodeFrame(f), wireErr(2003, /magic/));
  });
  test("a frame of version 2 is refused with 1001", () => {
    const f = ping.slice();
    f[2] = 2;
    assert.throws(() => decodeFrame(f), wireErr(1001, /version/));
    assert.throws(() => decodeFrame(f), (e: unknown) => (e as WireError).code === "ERR_PROTOCOL_VERSION");
  });
  test("an unknown frame type is refused with 2003", () => {
    const f = ping.slice();
    f[3] = 0x05;
    assert.throws(() => decodeFrame(f), wireErr(2003, /unknown message type 0x05/));
  });
  test("a truncated frame is refused by decodeFrame and awaited by FrameReader", () => {
    for (let cut = 0; cut < ping.length; cut++) {
      assert.throws(() => decodeFrame(ping.subarray(0, cut)), wireErr(2003, /truncated/));
      const r = new FrameReader();
      r.push(ping.subarray(0, cut));
      assert.equal(r.next(), null);
      assert.equal(r.hasPartial, cut > 0);
      assert.equal(r.buffered, cut);
    }
  });
  test("trailing bytes after a frame are refused with 2003", () => {
    const f = new Uint8Array(ping.length + 1);
    f.set(ping);
    assert.throws(() => decodeFrame(f), wireErr(2003, /trailing/));
  });
  test("a payload that is not a map is refused with 2003", () => {
    for (const v of [[1, 2], "str", 5, null, new Uint8Array(3)]) {
      assert.throws(() => decodeFrame(frame(0xf0, mpEncode(v))), wireErr(2003, /not a MessagePack map/));
    }
    assert.throws(() => decodeFrame(frame(0xf0, new Uint8Array(0))), wireErr(2003, /empty/));
  });
  test("malformed MessagePack inside a frame is refused with 2003", () => {
    const cases = [
      [0x81, 0xa2, 0x74], // truncated key
      [0x82, 0xa2, 0x74, 0x73, 0x01], // missing second pair
      [0x81, 0xc1, 0x01], // reserved byte
      [0x81, 0xa1, 0x78, 0xd4, 0x01, 0x02], // ext
      [0xdf, 0xff, 0xff, 0xff, 0xff], // map32 claiming 4G entries
      [0x81, 0xa1, 0x78, 0xdd, 0x7f, 0xff, 0xff, 0xff], // array32 claiming 2G items
      [0x81, 0xa1, 0x78, 0xdb, 0xff, 0xff, 0xff, 0xff], // str32 claiming 4 GiB
      [0x81, 0x01, 0x02], // integer key
      [0x81, 0xa9, ...new TextEncoder().encode("__proto__"), 0x01],
      [0x80, 0x00], // extra bytes after the map
    ];
    for (const c of cases) {
      assert.throws(() => decodeFrame(frame(0xf0, new Uint8Array(c))), wireErr(2003), JSON.stringify(c));
    }
  });
  test("deeply nested payloads are refused", () => {
    // {"x": [[[[[[[[[]]]]]]]]]} nested beyond MAX_DEPTH
    const depth = 20;
    const p = new Uint8Array([0x82, 0xa2, 0x74, 0x73, 0x01, 0xa1, 0x78, ...new Array(depth).fill(0x91), 0x90]);
    assert.throws(() => decodeFrame(frame(0xf0, p)), wireErr(2003, /nested/));
    // a million nested arrays: still just a WireError
    const deep = new Uint8Array(1_000_000).fill(0x91);
    deep.set([0x81, 0xa1, 0x78]);
    assert.throws(() => decodeFrame(frame(0xf0, deep)), wireErr(2003));
  });
  test("a missing required field is refused with 2003", () => {
    assert.throws(() => decodeFrame(frame(0xf0, mpEncode({ ts: 1 }))), wireErr(2003, /^Ping\.id is missing$/));
    const { public_key: _pk, ...hello } = payloadOf(samples[0]!);
    assert.throws(() => decodeFrame(frame(0x01, mpEncode(hello))), wireErr(2003, /Hello\.public_key is missing/));
  });
  test("a field of the wrong type is refused with 2003", () => {
    const cases: [number, Record<string, unknown>, RegExp][] = [
      [0xf0, { ts: "1", id: 1 }, /Ping\.ts must be an integer/],
      [0xf0, { ts: 1, id: 1.5 }, /Ping\.id must be an integer/],
      [0x01, { ...payloadOf(samples[0]!), public_key: new Uint8Array(33) }, /^Hello\.public_key must be 32 bytes$/],
      [0x01, { ...payloadOf(samples[0]!), public_key: "x".repeat(32) }, /Hello\.public_key must be bytes/],
      [0x01, { ...payloadOf(samples[0]!), node_id: A.toUpperCase() }, /Hello\.node_id must be a node ID/],
      [0x01, { ...payloadOf(samples[0]!), name: "x".repeat(65) }, /Hello\.name must be at most 64 bytes/],
      [0x01, { ...payloadOf(samples[0]!), name: "é".repeat(33) }, /Hello\.name must be at most 64 bytes/],
      [0x01, { ...payloadOf(samples[0]!), skills: new Array(33).fill("a") }, /Hello\.skills must have at most 32/],
      [0x01, { ...payloadOf(samples[0]!), skills: ["a".repeat(33)] }, /Hello\.skills\[0\] must be at most 32 bytes/],
      [0x01, { ...payloadOf(samples[0]!), listen_addrs: ["0.0.0.0:4433"] }, /Hello\.listen_addrs\[0\]/],
      [0x01, { ...payloadOf(samples[0]!), operator: { ...operator, username: "@alice" } }, /Hello\.operator\.username/],
      [0x01, { ...payloadOf(samples[0]!), operator: { ...operator, fid: "1" } }, /Hello\.operator\.fid/],
      [0x10, { ...payloadOf(samples[6]!), body: "{" }, /Message\.body must be JSON text/],
      [0x10, { ...payloadOf(samples[6]!), id: "msg_123" }, /Message\.id must be a message ID/],
      [0x10, { ...payloadOf(samples[6]!), topic: "t".repeat(129) }, /Message\.topic/],
      [0x04, { status: "fine" }, /VerifyAck\.status must be one of ok, rejected/],
      [0x04, { status: "ok", trust_level: "admin" }, /VerifyAck\.trust_level/],
      [0x11, { status: "delivered" }, /MessageAck\.status/],
      [0x32, { status: "ready", session: -1 }, /RelayReady\.session must be an unsigned 32-bit integer/],
      [0x21, { limit: 0 }, /BootstrapDiscover\.limit must be a positive/],
      [0x21, { operator: "@bob" }, /BootstrapDiscover\.operator/],
      [0x22, { peers: {} }, /BootstrapPeers\.peers must be an array/],
      [
        0x22,
        { peers: [{ ...(samples[15] as { peers: object[] }).peers[1], public_key: key(1).subarray(1) }] },
        /BootstrapPeers\.peers\[0\]\.public_key must be 32 bytes/,
      ],
      [0x20, { ...payloadOf(samples[10]!), address: "host-without-port" }, /BootstrapRegister\.address/],
      [
        0x20,
        { ...payloadOf(samples[10]!), record: { data: new Uint8Array(1), signature: sig(1).subarray(1) } },
        /BootstrapRegister\.record\.signature must be 64 bytes/,
      ],
      [0xff, { reason: "R".repeat(65), message: "" }, /Disconnect\.reason/],
      [0x33, { code: 2 ** 32, reason: "x" }, /RelayError\.code/],
    ];
    for (const [t, p, re] of cases) {
      assert.throws(() => decodeFrame(frame(t, mpEncode(p))), wireErr(2003, re), re.source);
    }
  });
  test("strings must be valid UTF-8 on the wire and well-formed when encoding", () => {
    // Disconnect {reason: "R", message: <bytes>}
    const withMessage = (bytes: number[]) =>
      frame(
        0xff,
        new Uint8Array([
          0x82,
          0xa6,
          ...new TextEncoder().encode("reason"),
          0xa1,
          0x52,
          0xa7,
          ...new TextEncoder().encode("message"),
          0xa0 | bytes.length,
          ...bytes,
        ]),
      );
    assert.deepEqual(decodeFrame(withMessage([0xc3, 0xa9])), { type: "Disconnect", reason: "R", message: "é" });
    for (const bad of [[0xff], [0xc3], [0xed, 0xa0, 0x80], [0xc0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82]]) {
      assert.throws(() => decodeFrame(withMessage(bad)), wireErr(2003, /UTF-8/), JSON.stringify(bad));
    }
    // long strings take the native path
    const long = new Array(100).fill(0x61);
    long[50] = 0xff;
    const p = mpEncode({ reason: "R", message: "a".repeat(100) });
    const f = frame(0xff, p);
    assert.equal(decodeFrame(f).type, "Disconnect");
    f.set(long, f.length - 100);
    assert.throws(() => decodeFrame(f), wireErr(2003, /UTF-8/));
    // a lone surrogate cannot travel unchanged: refused when encoding
    assert.throws(
      () => encodeFrame({ type: "Disconnect", reason: "R", message: "bad \ud800 text" }),
      wireErr(2003, /Disconnect\.message must be well-formed Unicode/),
    );
    assert.throws(
      () => encodeFrame({ ...(samples[6] as Extract<WireMessage, { type: "Message" }>), body: '"\udc00"' }),
      wireErr(2003, /Message\.body/),
    );
  });
  test("extra unknown fields are ignored and dropped", () => {
    const f = frame(0xf0, mpEncode({ ts: 1, id: 2, future: { nested: [1, "two", new Uint8Array(3)] }, other: null }));
    assert.deepStrictEqual(decodeFrame(f), { type: "Ping", ts: 1, id: 2 });
  });
  test("nil optional fields are accepted and decoded as absent", () => {
    const f = frame(0x31, mpEncode({ source_id: B, target_id: A, session: null }));
    const d = decodeFrame(f);
    assert.deepStrictEqual(d, { type: "RelayConnect", source_id: B, target_id: A });
    assert.ok(!("session" in d));
    const h = frame(0x01, mpEncode({ ...payloadOf(samples[0]!), operator: null, relays: null, agent: null }));
    assert.deepStrictEqual(decodeFrame(h), samples[0]);
  });
  test("a nil required field counts as missing", () => {
    assert.throws(() => decodeFrame(frame(0xf0, mpEncode({ ts: null, id: 1 }))), wireErr(2003, /Ping\.ts is missing/));
  });
  test("a declared length above the limit is refused with 2002", () => {
    const h = frame(0x10, new Uint8Array(0), 1, MAX_PAYLOAD + 1);
    assert.throws(() => decodeFrame(h), wireErr(2002));
  });
  test("decoding fails only with WireError, naming the frame type when known", () => {
    try {
      decodeFrame(frame(0x10, mpEncode({ id: 1 })));
      assert.fail("should throw");
    } catch (e) {
      assert.ok(e instanceof WireError);
      assert.equal(e.frameType, 0x10);
      assert.equal(e.name, "WireError");
      assert.equal(e.code, "ERR_MESSAGE_REJECTED");
    }
  });
});

describe("FrameReader", () => {
  const frames = samples.map((m) => encodeFrame(m));
  const all = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
  {
    let o = 0;
    for (const f of frames) {
      all.set(f, o);
      o += f.length;
    }
  }
  const drain = (r: FrameReader, out: WireMessage[]) => {
    for (let m = r.next(); m !== null; m = r.next()) out.push(m);
  };

  test("FrameReader splits several frames arriving in one chunk", () => {
    const r = new FrameReader();
    r.push(all);
    const out: WireMessage[] = [];
    drain(r, out);
    assert.deepStrictEqual(out, samples);
    assert.equal(r.buffered, 0);
    assert.equal(r.hasPartial, false);
  });

  test("FrameReader reassembles a frame split at any byte boundary", () => {
    for (let cut = 0; cut <= all.length; cut++) {
      const r = new FrameReader();
      const out: WireMessage[] = [];
      r.push(all.subarray(0, cut));
      drain(r, out);
      r.push(all.subarray(cut));
      drain(r, out);
      assert.equal(out.length, samples.length, `cut ${cut}`);
    }
    // and a full check of contents for a few cuts
    for (const cut of [1, 7, 8, 9, 100, all.length - 1]) {
      const r = new FrameReader();
      const out: WireMessage[] = [];
      r.push(all.subarray(0, cut));
      drain(r, out);
      r.push(all.subarray(cut));
      drain(r, out);
      assert.deepStrictEqual(out, samples);
    }
  });

  test("FrameReader reassembles frames arriving one byte at a time", () => {
    const r = new FrameReader();
    const out: WireMessage[] = [];
    for (let i = 0; i < all.length; i++) {
      r.push(all.subarray(i, i + 1));
      drain(r, out);
      assert.equal(r.hasPartial, r.buffered > 0);
    }
    assert.deepStrictEqual(out, samples);
  });

  test("FrameReader copies what it is pushed, so the caller may reuse its chunk", () => {
    const r = new FrameReader();
    const chunk = all.slice(0, 50);
    r.push(chunk);
    chunk.fill(0);
    r.push(all.subarray(50));
    const out: WireMessage[] = [];
    drain(r, out);
    assert.deepStrictEqual(out, samples);
  });

  test("an oversized length is refused with 2002 after only the 8-byte header", () => {
    const r = new FrameReader(PRE_HANDSHAKE_MAX_PAYLOAD);
    const header = frame(0x10, new Uint8Array(0), 1, PRE_HANDSHAKE_MAX_PAYLOAD + 1);
    r.push(header);
    assert.throws(() => r.next(), wireErr(2002));
    // sticky, and further bytes are not accumulated
    r.push(new Uint8Array(100_000));
    assert.equal(r.buffered, 8);
    assert.throws(() => r.next(), wireErr(2002));
  });

  test("an oversized frame arriving in one big chunk is not buffered", () => {
    const r = new FrameReader(PRE_HANDSHAKE_MAX_PAYLOAD);
    const big = frame(0x10, new Uint8Array(PRE_HANDSHAKE_MAX_PAYLOAD + 1));
    r.push(big);
    assert.equal(r.buffered, 8);
    assert.throws(() => r.next(), wireErr(2002));
  });

  test("a header alone does not make the reader allocate the declared payload", () => {
    const r = new FrameReader();
    const capacity = () => (r as unknown as { buf: Uint8Array }).buf.length;
    const m = {
      ...(samples[6] as Extract<WireMessage, { type: "Message" }>),
      body: JSON.stringify("w".repeat(MAX_PAYLOAD - 300)),
    };
    const f = encodeFrame(m);
    r.push(f.subarray(0, 100));
    assert.equal(r.next(), null);
    assert.ok(capacity() < 4096, `capacity ${capacity()}`);
    for (let i = 100; i < f.length; i += 65536) {
      r.push(f.subarray(i, Math.min(i + 65536, f.length)));
      assert.ok(capacity() <= Math.max(2 * r.buffered, 256) || capacity() === f.length, `capacity ${capacity()}`);
      const got = r.next();
      if (got) assert.deepStrictEqual(got, m);
    }
    assert.equal(r.buffered, 0);
    assert.ok(capacity() <= 64 * 1024, "large buffer released once drained");
  });

  test("an oversized length is detected when the header arrives split across pushes", () => {
    const r = new FrameReader(1000);
    const header = frame(0x10, new Uint8Array(0), 1, 1001);
    r.push(header.subarray(0, 5));
    assert.equal(r.next(), null);
    r.push(header.subarray(5));
    assert.throws(() => r.next(), wireErr(2002));
  });

  test("the reader's limit is 64 KiB before the handshake and 4 MiB after", () => {
    const m = {
      ...(samples[6] as Extract<WireMessage, { type: "Message" }>),
      body: JSON.stringify("z".repeat(70_000)),
    };
    const f = encodeFrame(m);
    const r1 = new FrameReader(PRE_HANDSHAKE_MAX_PAYLOAD);
    r1.push(f);
    assert.throws(() => r1.next(), wireErr(2002));

    const r2 = new FrameReader(PRE_HANDSHAKE_MAX_PAYLOAD);
    const ack = encodeFrame({ type: "VerifyAck", status: "ok" });
    r2.push(ack);
    assert.equal(r2.next()?.type, "VerifyAck");
    r2.maxPayload = MAX_PAYLOAD;
    r2.push(f);
    assert.deepStrictEqual(r2.next(), m);

    // exactly 64 KiB is fine before the handshake
    const r3 = new FrameReader(PRE_HANDSHAKE_MAX_PAYLOAD);
    const exact = frame(0xf0, new Uint8Array(PRE_HANDSHAKE_MAX_PAYLOAD));
    r3.push(exact.subarray(0, 8));
    assert.equal(r3.next(), null);
    assert.equal(r3.hasPartial, true);
  });

  test("the reader's default limit is MAX_PAYLOAD", () => {
    assert.equal(new FrameReader().maxPayload, MAX_PAYLOAD);
  });

  test("a bad header stops the reader for good while a bad payload only costs its frame", () => {
    const r = new FrameReader();
    const badPayload = frame(0xf0, mpEncode({ ts: "x", id: 1 }));
    const good = encodeFrame({ type: "Ping", ts: 5, id: 6 });
    r.push(badPayload);
    r.push(good);
    assert.throws(() => r.next(), wireErr(2003, /Ping\.ts/));
    assert.deepEqual(r.next(), { type: "Ping", ts: 5, id: 6 });
    assert.equal(r.next(), null);

    const r2 = new FrameReader();
    const v2 = good.slice();
    v2[2] = 2;
    r2.push(v2);
    assert.throws(() => r2.next(), wireErr(1001));
    assert.throws(() => r2.next(), wireErr(1001));
  });

  test("a frame cut short at FIN shows through hasPartial", () => {
    const r = new FrameReader();
    r.push(all.subarray(0, all.length - 3));
    const out: WireMessage[] = [];
    drain(r, out);
    assert.equal(out.length, samples.length - 1);
    assert.equal(r.hasPartial, true);
    assert.ok(r.buffered > 0);
  });

  test("a large frame arriving in small chunks", () => {
    const m = {
      ...(samples[6] as Extract<WireMessage, { type: "Message" }>),
      body: JSON.stringify("q".repeat(1_000_000)),
    };
    const f = encodeFrame(m);
    const r = new FrameReader();
    let got: WireMessage | null = null;
    for (let i = 0; i < f.length; i += 16384) {
      r.push(f.subarray(i, i + 16384));
      const x = r.next();
      if (x) got = x;
    }
    assert.deepStrictEqual(got, m);
    assert.equal(r.buffered, 0);
  });
});

describe("field validators", () => {
  test("node and message IDs are checked for their exact form", () => {
    assert.ok(isNodeId(A));
    assert.ok(!isNodeId(A.slice(0, -1)));
    assert.ok(!isNodeId(A + "0"));
    assert.ok(!isNodeId("atlas_" + "G".repeat(64)));
    assert.ok(isMsgId(MID));
    assert.ok(isMsgId("msg_" + crypto.randomUUID()));
    assert.ok(!isMsgId(MID.toUpperCase()));
    assert.ok(!isMsgId("msg_0190a1b2c3d47e5f8a9b0c1d2e3f4a5b"));
  });
  test("addresses parse as IPv4 or bracketed IPv6 with a port", () => {
    const good = [
      "1.2.3.4:1",
      "255.255.255.255:65535",
      "127.0.0.1:4433",
      "[::1]:4433",
      "[2001:db8::1]:4433",
      "[2001:DB8:0:0:0:0:0:1]:4433",
      "[::ffff:192.0.2.1]:4433",
      "[1:2:3:4:5:6:7:8]:9",
      "[1::]:9",
      "localhost:4433",
      "relay.example.com:443",
      "a-b.c:1",
    ];
    const bad = [
      "0.0.0.0:4433",
      "[::]:4433",
      "[0:0:0:0:0:0:0:0]:4433",
      "[::0]:1",
      "[::ffff:0.0.0.0]:4433",
      "::1:4433",
      "2001:db8::1:4433",
      "1.2.3.4",
      "1.2.3.4:0",
      "1.2.3.4:65536",
      "1.2.3.4:04433",
      "1.2.3.4:",
      ":4433",
      "256.1.1.1:1",
      "1.2.3:1",
      "01.2.3.4:1",
      "[1:2:3:4:5:6:7:8:9]:1",
      "[1::2::3]:1",
      "[fe80::1%eth0]:1",
      "[::1]4433",
      "-bad.example:1",
      "bad-.example:1",
      "under_score.example:1",
      "a..b:1",
      "host name:1",
      "x".repeat(400) + ":1",
    ];
    for (const s of good) assert.ok(isAddress(s), s);
    for (const s of bad) assert.ok(!isAddress(s), s);
    assert.deepEqual(parseHostPort("[2001:db8::1]:4433"), { host: "2001:db8::1", port: 4433, family: 6 });
    assert.deepEqual(parseHostPort("10.0.0.1:80"), { host: "10.0.0.1", port: 80, family: 4 });
    assert.deepEqual(parseHostPort("example.org:80"), { host: "example.org", port: 80, family: 0 });
    assert.ok(isRelayAddress(`${A}@relay.example.com:4433`));
    assert.ok(isRelayAddress("relay.example.com:4433"));
    assert.ok(!isRelayAddress(`${A}@0.0.0.0:4433`));
    assert.ok(!isRelayAddress(`atlas_123@1.2.3.4:1`));
    assert.ok(!isAddress(`${A}@1.2.3.4:1`));
  });
  test("JSON text is recognised as JSON.parse would", () => {
    const good = [
      '{"a":1}',
      "[]",
      "0",
      "-0.5e+10",
      '"x"',
      " true ",
      "null",
      '{"a":[1,{"b":"\\u00e9\\n"}]}',
      "1E400",
      '"\ud800"',
    ];
    const bad = [
      "",
      " ",
      "{",
      "[1,]",
      '{"a":1,}',
      "01",
      "1.",
      ".5",
      "+1",
      "NaN",
      "'x'",
      '"\\x"',
      '"a\nb"',
      "[1] x",
      "tru",
      "{a:1}",
      "\ufeff1",
    ];
    for (const s of good) assert.ok(isJsonText(s), s);
    for (const s of bad) assert.ok(!isJsonText(s), JSON.stringify(s));
  });
  test("utf8Length counts UTF-8 bytes", () => {
    for (const s of ["", "abc", "é", "名前", "😀", "\ud800", "a\udc00b"]) {
      assert.equal(utf8Length(s), new TextEncoder().encode(s).length, s);
    }
  });
});

describe("decoding errors", () => {
  test("wire errors are made without a stack trace, which was most of a refusal's cost", () => {
    const before = Error.stackTraceLimit;
    const bad = Uint8Array.of(0xab, 0x01, 0x01, MsgType.Ping, 0, 0, 0, 1, 0x80);
    const caught: unknown[] = [];
    try {
      decodeFrame(bad);
    } catch (e) {
      caught.push(e);
    }
    const r = new FrameReader();
    r.push(bad);
    try {
      r.next();
    } catch (e) {
      caught.push(e);
    }
    assert.equal(caught.length, 2);
    for (const e of caught) {
      assert.ok(e instanceof WireError, String(e));
      assert.equal(e.wireCode, ProtocolCode.ERR_MESSAGE_REJECTED);
      assert.equal(e.stack?.split("\n").length, 1, `no frames in the stack: ${e.stack}`);
    }
    assert.equal(Error.stackTraceLimit, before, "the stack trace limit is restored");
    assert.ok((new Error("x").stack?.split("\n").length ?? 0) > 1, "other errors keep their stacks");
  });
});

describe("FrameReader allocation", () => {
  test("a reserved frame is allocated whole once 64 KiB of it are in, not at its header", () => {
    const body = JSON.stringify("a".repeat(1024 * 1024));
    const frame = encodeFrame({ type: "Message", id: MID, from: A, to: B, timestamp: 1, body });
    const r = new FrameReader();
    // A header declaring 1 MiB and a few bytes, reserved: nothing near 1 MiB allocated (a header
    // then FIN used to cost an allocation of its declared size).
    r.push(frame.subarray(0, 100));
    assert.equal(r.next(), null);
    r.reserveForPending();
    assert.ok(r.capacity < 4096, `a header and 92 bytes hold ${r.capacity} bytes`);
    // Past 64 KiB: the whole frame at once (no doubling garbage), and never again.
    r.push(frame.subarray(100, 70_000));
    assert.equal(r.capacity, frame.length);
    r.push(frame.subarray(70_000));
    assert.equal(r.capacity, frame.length);
    const m = r.next();
    assert.ok(m?.type === "Message" && m.body === body);
  });
});
