/**
 * docs/protocol.md#handshake handshake, end to end over real QUIC on 127.0.0.1: the happy path and one test per
 * rejection path. The responder is real (an AtlasNode with a temp-dir store, or acceptHandshake
 * on a bare endpoint); the initiator is mostly hand-driven (test/helpers/handshake-peer.ts) so it
 * can lie. Each rejection checks the exact Error code on the control stream, that the responder
 * closed the connection, and that no session exists afterwards.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { AtlasError, isAtlasError } from "../src/errors.ts";
import { initiateHandshake } from "../src/handshake/handshake.ts";
import { handshakeSignedBytes, ROLE_INITIATOR, ROLE_RESPONDER } from "../src/handshake/signing.ts";
import type { Identity } from "../src/identity/identity.ts";
import { verifyEd25519 } from "../src/identity/keys.ts";
import { trustLevelFor } from "../src/net/trust.ts";
import { EARLY_REQUESTS } from "../src/net/session.ts";
import type { QuicConnection } from "../src/transport/connection.ts";
import type { QuicStream } from "../src/transport/stream.ts";
import { FRAME_MAGIC, HEADER_LEN, MsgType, PRE_HANDSHAKE_MAX_PAYLOAD, WIRE_VERSION } from "../src/wire/messages.ts";
import type { FramedStream } from "../src/wire/framed-stream.ts";
import type { Config } from "../src/config/defaults.ts";
import type { HelloAck, Verify, WireMessage } from "../src/wire/messages.ts";
import {
  AdversarialInitiator,
  type BareOutcome,
  type BareResponder,
  bounded,
  localCard,
  messageFrame,
  type NodeResponder,
  nowSecs,
  RawConn,
  seededIdentity,
  startBareResponder,
  startNodeResponder,
  testConfig,
} from "./helpers/handshake-peer.ts";
import { holdsWithin, waitFor } from "./helpers/wait.ts";
import { createTestnet } from "./helpers/testnet.ts";

const T = { timeout: 15_000 };

const RESPONDER = seededIdentity(0x52);
const ME = seededIdentity(0x01);
const OTHER = seededIdentity(0x02);

// ---------------------------------------------------------------------------------------------
// Harness

async function withNode(
  fn: (r: NodeResponder, a: AdversarialInitiator) => Promise<void>,
  o: { tls?: Identity; configure?: (c: Config) => void } = {},
): Promise<void> {
  const r = await startNodeResponder({ identity: RESPONDER, configure: o.configure });
  let a: AdversarialInitiator | undefined;
  try {
    a = await AdversarialInitiator.create(o.tls ?? ME);
    await fn(r, a);
  } finally {
    await a?.close();
    await r.close();
  }
}

/** The responder answered with Error `code` on the control stream and closed the connection. */
async function assertRefused(c: RawConn, code: number, message?: RegExp | string): Promise<void> {
  const { error, close, afterError } = await c.expectRefusal(5000);
  assert.equal(error.code, code, `Error frame: ${error.code} ${error.message}`);
  if (typeof message === "string") assert.equal(error.message, message);
  else if (message) assert.match(error.message, message);
  // The Error frame is the last thing on the control stream: FIN, or the connection's end.
  assert.ok(
    afterError === null || afterError instanceof Error,
    `nothing may follow the Error frame, got ${JSON.stringify(afterError)}`,
  );
  assert.equal(close.local, false, "the responder must close the connection");
  assert.equal(close.timedOut, false, "closed by the responder, not by an idle timeout");
  assert.equal(close.app, true, "closed with an application error code");
  assert.equal(close.code, code, `connection close code (reason: ${close.reason})`);
}

async function assertNoSession(r: NodeResponder): Promise<void> {
  assert.deepEqual(r.node.allSessions(), [], "no live session");
  assert.deepEqual(await r.store.sessions.list(), [], "no session row");
}

/** Expected signed bytes, built here from docs/protocol.md#handshake rather than by signing.ts. */
function specSignedBytes(role: number, signer: string, verifier: string, challenge: Uint8Array): Uint8Array {
  return Uint8Array.from(
    Buffer.concat([
      Buffer.from("atlas-handshake-v1", "ascii"),
      Buffer.from([role]),
      Buffer.from(signer, "ascii"),
      Buffer.from(verifier, "ascii"),
      challenge,
    ]),
  );
}

/** Find the one frame of `type` in a list. */
function one<N extends WireMessage["type"]>(list: WireMessage[], type: N): Extract<WireMessage, { type: N }> {
  const found = list.filter((m) => m.type === type);
  assert.equal(found.length, 1, `exactly one ${type} in ${list.map((m) => m.type).join(",")}`);
  return found[0] as Extract<WireMessage, { type: N }>;
}

function initiatorOptions(extra: { expectedNodeId?: string; maxDriftS?: number } = {}) {
  const cfg = testConfig();
  return {
    timeoutMs: 5000,
    maxDriftS: cfg.security.max_clock_drift_secs,
    trustFor: (peer: Parameters<typeof trustLevelFor>[1]) => trustLevelFor(cfg, peer, { path: "direct" }),
    ...extra,
  };
}

/** Reads the response on a request stream; resolves to the frame or the error that ended it. */
async function response(fs: FramedStream, ms: number): Promise<WireMessage | null | Error> {
  try {
    return await fs.read(ms);
  } catch (e) {
    return e as Error;
  }
}

// ---------------------------------------------------------------------------------------------
// 1. Happy path

test(
  "happy path: initiateHandshake ↔ acceptHandshake — both results, trust unknown, observed_addr, domain-separated signatures",
  T,
  async () => {
    const br = await startBareResponder(RESPONDER);
    const a = await AdversarialInitiator.create(ME);
    let conn: QuicConnection | undefined;
    try {
      conn = a.endpoint.connect(br.addr);
      const mine = await initiateHandshake(
        conn,
        localCard(ME, "initiator"),
        initiatorOptions({ expectedNodeId: RESPONDER.nodeId }),
      );
      const out = await bounded(br.outcome(0), 5000, "responder outcome");
      assert.equal(out.error, undefined, `responder failed: ${(out.error as Error | undefined)?.message}`);
      const theirs = out.result!;

      // Initiator's result.
      assert.equal(mine.peer.nodeId, RESPONDER.nodeId);
      assert.deepEqual(mine.peer.publicKey, RESPONDER.publicKey);
      assert.equal(mine.peer.name, "bare-responder");
      assert.equal(mine.trust, "unknown");
      assert.equal(await mine.verifyAck, "unknown", "VerifyAck carries the responder's trust level");
      assert.equal(mine.observedAddr, a.localAddr, "observed_addr is the initiator's source address");
      assert.match(mine.observedAddr!, /^127\.0\.0\.1:\d+$/);
      // Responder's result.
      assert.equal(theirs.peer.nodeId, ME.nodeId);
      assert.deepEqual(theirs.peer.publicKey, ME.publicKey);
      assert.equal(theirs.peer.name, "initiator");
      assert.equal(theirs.trust, "unknown");
      assert.equal(conn.verified, true);
      assert.equal(out.conn.verified, true);

      // The frames as the responder read and wrote them.
      const control = out.control!;
      assert.deepEqual(control.seen.map((m) => m.type), ["Hello", "Verify"]);
      assert.deepEqual(control.sent.map((m) => m.type), ["HelloAck", "VerifyAck"]);
      const hello = one(control.seen, "Hello");
      const verify = one(control.seen, "Verify");
      const ack = one(control.sent, "HelloAck");
      const vack = one(control.sent, "VerifyAck");
      assert.equal(vack.status, "ok");
      assert.equal(vack.trust_level, "unknown");
      assert.equal(ack.observed_addr, a.localAddr);
      assert.notDeepEqual(ack.challenge, hello.challenge, "each side picks its own challenge");
      assert.deepEqual(verify.challenge, ack.challenge, "Verify echoes HelloAck.challenge");

      // Signed bytes: "atlas-handshake-v1" ‖ role ‖ signer ‖ verifier ‖ challenge.
      const respBytes = specSignedBytes(0x02, RESPONDER.nodeId, ME.nodeId, hello.challenge);
      const initBytes = specSignedBytes(0x01, ME.nodeId, RESPONDER.nodeId, ack.challenge);
      assert.equal(ROLE_INITIATOR, 0x01);
      assert.equal(ROLE_RESPONDER, 0x02);
      assert.deepEqual(
        Uint8Array.from(handshakeSignedBytes(ROLE_RESPONDER, RESPONDER.nodeId, ME.nodeId, hello.challenge)),
        respBytes,
      );
      assert.deepEqual(
        Uint8Array.from(handshakeSignedBytes(ROLE_INITIATOR, ME.nodeId, RESPONDER.nodeId, ack.challenge)),
        initBytes,
      );
      assert.equal(
        verifyEd25519(RESPONDER.publicKey, respBytes, ack.signature),
        true,
        "HelloAck signature over the domain-separated bytes",
      );
      assert.equal(
        verifyEd25519(ME.publicKey, initBytes, verify.signature),
        true,
        "Verify signature over the domain-separated bytes",
      );
      // …and over nothing else: not the bare challenge, not the other role.
      assert.equal(verifyEd25519(RESPONDER.publicKey, hello.challenge, ack.signature), false);
      assert.equal(verifyEd25519(ME.publicKey, ack.challenge, verify.signature), false);
      assert.equal(
        verifyEd25519(
          RESPONDER.publicKey,
          specSignedBytes(0x01, RESPONDER.nodeId, ME.nodeId, hello.challenge),
          ack.signature,
        ),
        false,
      );
      assert.equal(
        verifyEd25519(
          ME.publicKey,
          specSignedBytes(0x02, ME.nodeId, RESPONDER.nodeId, ack.challenge),
          verify.signature,
        ),
        false,
      );
    } finally {
      conn?.close(0, "test done");
      await a.close();
      await br.close();
    }
  },
);

test(
  "happy path: hand-driven initiator ↔ AtlasNode — VerifyAck ok, observed_addr, session and peer rows",
  T,
  async () => {
    await withNode(async (r, a) => {
      const c = await a.connect(r.addr);
      const { hello, ack, verifyAck } = await c.completeHandshake(ME);
      assert.deepEqual(verifyAck, { type: "VerifyAck", status: "ok", trust_level: "unknown" });
      assert.equal(ack.node_id, RESPONDER.nodeId);
      assert.deepEqual(ack.public_key, RESPONDER.publicKey);
      assert.equal(ack.protocol_v, 1);
      assert.ok(Math.abs(ack.timestamp - nowSecs()) <= 5, "HelloAck timestamp is now");
      assert.equal(ack.observed_addr, a.localAddr);
      assert.equal(
        verifyEd25519(
          RESPONDER.publicKey,
          specSignedBytes(0x02, RESPONDER.nodeId, ME.nodeId, hello.challenge),
          ack.signature,
        ),
        true,
      );

      await waitFor("session at the responder", () => r.node.allSessions().length === 1, {
        timeoutMs: 5000,
        intervalMs: 5,
      });
      const [s] = r.node.allSessions();
      assert.equal(s!.nodeId, ME.nodeId);
      assert.equal(s!.trust, "unknown");
      assert.equal(s!.direction, "inbound");
      assert.equal(s!.remoteAddress, a.localAddr);
      await waitFor("session row", () => s!.rowId !== null, { timeoutMs: 5000, intervalMs: 5 });
      const rows = await r.store.sessions.list({ open: true });
      assert.equal(rows.length, 1);
      assert.equal(rows[0]!.node_id, ME.nodeId);
      assert.equal(rows[0]!.direction, "inbound");
      assert.equal(rows[0]!.remote_address, a.localAddr);
      assert.equal(rows[0]!.trust_level, "unknown");
      const peer = await r.store.peers.get(ME.nodeId);
      assert.equal(peer?.name, "initiator");
      assert.equal(peer?.trust_level, "unknown");
    });
  },
);

// ---------------------------------------------------------------------------------------------
// 2–5. Responder-side identity and signature checks

test(
  "a Verify signed wrongly (garbage, the bare challenge, the wrong role byte, another key) is refused with 1002",
  T,
  async () => {
    await withNode(async (r, a) => {
      const forgeries: [string, (ack: HelloAck) => Uint8Array][] = [
        ["random bytes", () => new Uint8Array(randomBytes(64))],
        ["signature over the bare challenge", (ack) => ME.sign(ack.challenge)],
        [
          "signature with the responder's role byte",
          (ack) => ME.sign(handshakeSignedBytes(ROLE_RESPONDER, ME.nodeId, ack.node_id, ack.challenge)),
        ],
        [
          "signature by another key",
          (ack) => OTHER.sign(handshakeSignedBytes(ROLE_INITIATOR, ME.nodeId, ack.node_id, ack.challenge)),
        ],
      ];
      for (const [what, forge] of forgeries) {
        const c = await a.connect(r.addr);
        await c.send(RawConn.hello(ME));
        const ack = await c.readHelloAck();
        await c.send({ type: "Verify", signature: forge(ack), challenge: ack.challenge });
        await assert.doesNotReject(assertRefused(c, 1002, /signature is invalid/), what);
      }
      await assertNoSession(r);
    });
  },
);

test("a Verify replayed from an earlier connection is refused with 1002", T, async () => {
  await withNode(async (r, a) => {
    // Connection 1: an honest handshake; record its Verify.
    const c1 = await a.connect(r.addr);
    const first = await c1.completeHandshake(ME);
    assert.equal(first.verifyAck?.type === "VerifyAck" && first.verifyAck.status, "ok");
    const recorded: Verify = first.verify;
    c1.close();
    await waitFor("first session to end", () => r.node.allSessions().length === 0, { timeoutMs: 5000, intervalMs: 5 });

    // Connection 2: fresh challenge; replay the recorded Verify verbatim.
    const c2 = await a.connect(r.addr);
    await c2.send(RawConn.hello(ME));
    const ack2 = await c2.readHelloAck();
    assert.notDeepEqual(ack2.challenge, first.ack.challenge, "the responder picked a fresh challenge");
    await c2.send(recorded);
    await assertRefused(c2, 1002);

    // Connection 3: the recorded signature, with the new challenge echoed.
    const c3 = await a.connect(r.addr);
    await c3.send(RawConn.hello(ME));
    const ack3 = await c3.readHelloAck();
    await c3.send({ type: "Verify", signature: recorded.signature, challenge: ack3.challenge });
    await assertRefused(c3, 1002, /signature is invalid/);

    assert.deepEqual(r.node.allSessions(), []);
    assert.deepEqual(await r.store.sessions.list({ open: true }), []);
    assert.equal((await r.store.sessions.list()).length, 1, "only connection 1 ever had a session");
  });
});

test("a Hello whose node_id is not derived from its public_key is refused with 1004", T, async () => {
  await withNode(async (r, a) => {
    const c = await a.connect(r.addr);
    // public_key is ours (= the TLS key), node_id is someone else's.
    await c.send(RawConn.hello(ME, { node_id: OTHER.nodeId }));
    await assertRefused(c, 1004, /not derived from its public key/);
    await assertNoSession(r);
    assert.equal(await r.store.peers.get(OTHER.nodeId), null);
  });
});

test("a Hello whose public_key differs from the TLS certificate's is refused with 1002", T, async () => {
  // TLS presents ME's certificate; Hello claims OTHER, self-consistently (node_id matches key).
  await withNode(
    async (r, a) => {
      const c = await a.connect(r.addr);
      await c.send(RawConn.hello(OTHER));
      await assertRefused(c, 1002, /differs from the TLS certificate key/);
      await assertNoSession(r);
      assert.equal(await r.store.peers.get(OTHER.nodeId), null);
    },
    { tls: ME },
  );
});

// ---------------------------------------------------------------------------------------------
// 6. Initiator-side identity pin

test(
  "initiator dialling an expected node ID that differs → ERR_INVALID_IDENTITY (1004), no Verify sent",
  T,
  async () => {
    const br = await startBareResponder(RESPONDER);
    const a = await AdversarialInitiator.create(ME);
    let conn: QuicConnection | undefined;
    try {
      conn = a.endpoint.connect(br.addr);
      await assert.rejects(
        initiateHandshake(conn, localCard(ME), initiatorOptions({ expectedNodeId: OTHER.nodeId })),
        (e: unknown) => {
          assert.ok(isAtlasError(e, "ERR_INVALID_IDENTITY"), `got ${String(e)}`);
          assert.equal((e as AtlasError).protocolCode, 1004);
          assert.match((e as AtlasError).message, /not the expected/);
          return true;
        },
      );
      const out = await bounded(br.outcome(0), 5000, "responder outcome");
      assert.equal(out.result, undefined, "the responder must not complete a handshake");
      const seen = out.control?.seen ?? [];
      assert.ok(!seen.some((m) => m.type === "Verify"), `responder saw ${seen.map((m) => m.type).join(",")}`);
      const info = await bounded(out.conn.closed, 5000, "connection close at the responder");
      assert.equal(info.local, false, "the initiator closed the connection");
      assert.equal(info.code, 1004);
    } finally {
      conn?.close(0, "test done");
      await a.close();
      await br.close();
    }
  },
);

// ---------------------------------------------------------------------------------------------
// 7. Clock drift

test("a Hello timestamp 1000 s off is refused with 1002 naming the clock drift", T, async () => {
  await withNode(async (r, a) => {
    for (const skew of [-1000, +1000]) {
      const c = await a.connect(r.addr);
      await c.send(RawConn.hello(ME, { timestamp: nowSecs() + skew }));
      await assert.doesNotReject(assertRefused(c, 1002, /clock drift/), `skew ${skew}`);
    }
    await assertNoSession(r);
  });
});

/**
 * Dial `br` as ME and run the initiator's side, which must fail with ERR_HANDSHAKE_FAILED matching
 * `why`; then `check` what the responder saw.
 */
async function initiatorRefuses(
  br: BareResponder,
  why: RegExp,
  check: (out: BareOutcome) => Promise<void>,
): Promise<void> {
  const a = await AdversarialInitiator.create(ME);
  let conn: QuicConnection | undefined;
  try {
    conn = a.endpoint.connect(br.addr);
    await assert.rejects(initiateHandshake(conn, localCard(ME), initiatorOptions()), (e: unknown) => {
      assert.ok(isAtlasError(e, "ERR_HANDSHAKE_FAILED"), `got ${String(e)}`);
      assert.match((e as Error).message, why);
      return true;
    });
    await check(await bounded(br.outcome(0), 5000, "responder outcome"));
  } finally {
    conn?.close(0, "test done");
    await a.close();
    await br.close();
  }
}

test(
  "clock drift: responder's HelloAck timestamp skewed → initiator throws ERR_HANDSHAKE_FAILED, sends no Verify",
  T,
  async () => {
    // The responder tolerates any drift itself (so it answers) but stamps HelloAck 1000 s ahead.
    const br = await startBareResponder(RESPONDER, { now: () => nowSecs() + 1000, maxDriftS: 1_000_000 });
    await initiatorRefuses(br, /clock drift/, async (out) => {
      assert.equal(out.result, undefined);
      // What reached the responder: Hello, then the initiator's own refusal — never a Verify.
      const seen = out.control!.seen;
      assert.deepEqual(seen.map((m) => m.type), ["Hello", "Error"]);
      const told = one(seen, "Error");
      assert.equal(told.code, 1002);
      assert.match(told.message, /clock drift/);
      await bounded(out.conn.closed, 5000, "connection close");
    });
  },
);

test(
  "a responder's HelloAck signed wrongly: the initiator (Verify already sent) refuses with 1002 and starts no session",
  T,
  async () => {
    // The responder's key is right (TLS proves it) but its HelloAck signature is garbage.
    const broken = seededIdentity(0x5b);
    broken.sign = () => new Uint8Array(64).fill(7);
    const br = await startBareResponder(broken);
    await initiatorRefuses(br, /responder's handshake signature is invalid/, async (out) => {
      // Verify left before the check (it runs while Verify travels); then the initiator closed
      // the connection with 1002, whatever the (broken) responder made of the Verify.
      assert.deepEqual(out.control!.seen.slice(0, 2).map((m) => m.type), ["Hello", "Verify"]);
      const info = await bounded(out.conn.closed, 5000, "connection close at the responder");
      assert.deepEqual({ local: info.local, code: info.code }, { local: false, code: 1002 });
    });
  },
);

// ---------------------------------------------------------------------------------------------
// 8. Protocol version

test("a Hello of protocol version 2 is refused with 1001", T, async () => {
  await withNode(async (r, a) => {
    const c = await a.connect(r.addr);
    await c.send(RawConn.hello(ME, { protocol_v: 2 }));
    await assertRefused(c, 1001, /protocol_v 2/);
    await assertNoSession(r);
  });
});

// ---------------------------------------------------------------------------------------------
// 9. Timeout

const shortTimeout = (c: Config) => {
  c.security.handshake_timeout = 1;
};

/** Send Hello, read the HelloAck, say nothing more: refused with 1003 after the 1 s timeout. */
async function helloThenSilence(c: RawConn): Promise<void> {
  const t0 = Date.now();
  await c.send(RawConn.hello(ME));
  await c.readHelloAck();
  await assertRefused(c, 1003, /not finished within 1 s/);
  const elapsed = Date.now() - t0;
  assert.ok(elapsed >= 900, `refused after ${elapsed} ms, before the 1 s timeout`);
  assert.ok(elapsed < 4000, `refused after ${elapsed} ms`);
}

test("acceptHandshake sends 1003 when a Hello is never followed by a Verify within timeoutMs", T, async () => {
  const br = await startBareResponder(RESPONDER, { timeoutMs: 1000 });
  const a = await AdversarialInitiator.create(ME);
  try {
    await helloThenSilence(await a.connect(br.addr));
    const out = await bounded(br.outcome(0), 5000, "responder outcome");
    assert.ok(isAtlasError(out.error, "ERR_HANDSHAKE_TIMEOUT"), `got ${String(out.error)}`);
    assert.deepEqual(out.control!.seen.map((m) => m.type), ["Hello"]);
  } finally {
    await a.close();
    await br.close();
  }
});

test(
  "a node sends Error 1003 when a Hello is never followed by a Verify within security.handshake_timeout",
  T,
  async () => {
    await withNode(
      async (r, a) => {
        await helloThenSilence(await a.connect(r.addr));
        await assertNoSession(r);
      },
      { configure: shortTimeout },
    );
  },
);

test("a QUIC connection that never opens a stream is closed after security.handshake_timeout", T, async () => {
  await withNode(
    async (r, a) => {
      const t0 = Date.now();
      const c = await a.connect(r.addr);
      const info = await c.closedWithin(5000);
      const elapsed = Date.now() - t0;
      assert.ok(info, "the responder must close the connection");
      assert.equal(info.local, false);
      assert.equal(info.timedOut, false);
      assert.equal(info.code, 1003);
      assert.ok(elapsed >= 900, `closed after ${elapsed} ms, before the 1 s timeout`);
      assert.ok(elapsed < 4000, `closed after ${elapsed} ms`);
      await assertNoSession(r);
    },
    { configure: shortTimeout },
  );
});

// ---------------------------------------------------------------------------------------------
// 10. Frames before the handshake

test("a Ping before the handshake is done is refused with 2001", T, async () => {
  await withNode(async (r, a) => {
    const c = await a.connect(r.addr);
    await c.send({ type: "Ping", ts: nowSecs(), id: 1 });
    await assertRefused(c, 2001, /Ping before the handshake/);

    const c2 = await a.connect(r.addr);
    await c2.send(RawConn.hello(ME));
    await c2.readHelloAck();
    await c2.send({ type: "Ping", ts: nowSecs(), id: 2 });
    await assertRefused(c2, 2001, /Ping before the handshake/);
    await assertNoSession(r);
  });
});

test(
  "an initiator's session opens once Verify is sent; VerifyAck sets remoteTrust later, and requests past EARLY_REQUESTS wait for it",
  T,
  async () => {
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const streams: QuicStream[] = [];
    const br = await startBareResponder(RESPONDER, {
      trustFor: async () => {
        await gate; // the responder holds VerifyAck until the test opens the gate
        return "unknown" as const;
      },
    }, (s) => void streams.push(s));
    const net = createTestnet({ prefix: "atlas-hs-" });
    try {
      const node = await net.node({ identity: ME, name: "initiator" });
      const s = await node.connectTo(br.addr);
      assert.equal(s.remoteTrust, null, "no VerifyAck yet");
      assert.deepEqual(br.control(0)!.sent.map((m) => m.type), ["HelloAck"]);
      const pending = Array.from(
        { length: EARLY_REQUESTS + 2 },
        () => s.request(messageFrame(ME.nodeId, RESPONDER.nodeId), 10_000).catch((e: unknown) => e),
      );
      await waitFor("the early request streams at the responder", () => streams.length === EARLY_REQUESTS);
      assert.equal(
        await holdsWithin(() => streams.length > EARLY_REQUESTS, 300),
        false,
        "a request past EARLY_REQUESTS opened its stream before VerifyAck",
      );
      open();
      await waitFor("VerifyAck at the initiator", () => s.remoteTrust === "unknown");
      await waitFor("the waiting requests' streams", () => streams.length === EARLY_REQUESTS + 2);
      for (const st of streams) st.abort(0);
      await Promise.all(pending);
    } finally {
      open();
      await net.destroy();
      await br.close();
    }
  },
);

test("a responder that refuses after Verify ends the initiator's open session with its reason", T, async () => {
  const br = await startBareResponder(RESPONDER, {
    trustFor: () => Promise.reject(new AtlasError("ERR_HANDSHAKE_FAILED", "trust store unavailable")),
  });
  const net = createTestnet({ prefix: "atlas-hs-" });
  try {
    const node = await net.node({ identity: ME, name: "initiator" });
    const s = await node.connectTo(br.addr);
    const reason = await bounded(s.done, 5000, "the session's end");
    assert.match(reason, /trust store unavailable/);
    await assert.rejects(s.request(messageFrame(ME.nodeId, RESPONDER.nodeId), 5000), (e: unknown) => isAtlasError(e));
    assert.equal(s.remoteTrust, null);
  } finally {
    await net.destroy();
    await br.close();
  }
});

test("a request stream opened before the handshake is held, unanswered until VerifyAck", T, async () => {
  await withNode(async (r, a) => {
    const c = await a.connect(r.addr);
    void c.control; // stream 0 is ours, but nothing on it yet
    // Stream 4 reaches the responder before the control stream carries anything.
    const req = messageFrame(ME.nodeId, RESPONDER.nodeId);
    const rs = await c.openRequest(req);
    assert.equal(rs.stream.id, 4);
    await c.send(RawConn.hello(ME));
    const ack = await c.readHelloAck();

    // Held: nothing comes back on stream 4 and the handler has not run.
    const early = await response(rs, 300);
    assert.ok(
      early instanceof AtlasError && early.code === "ERR_TIMEOUT",
      `stream 4 answered before VerifyAck: ${String(early)}`,
    );
    assert.equal(r.handled.length, 0);

    await c.send(RawConn.verify(ME, ack));
    const vack = await c.read();
    assert.deepEqual(vack, { type: "VerifyAck", status: "ok", trust_level: "unknown" });
    // Served once the session exists.
    const res = await response(rs, 5000);
    assert.deepEqual(res, { type: "MessageAck", msg_id: req.id, status: "received" });
    assert.deepEqual(r.handled.map((m) => m.id), [req.id]);
  });
});

test("a held request stream is reset, never served, when the handshake fails", T, async () => {
  await withNode(async (r, a) => {
    const c = await a.connect(r.addr);
    void c.control;
    const rs = await c.openRequest(messageFrame(ME.nodeId, RESPONDER.nodeId));
    await c.send(RawConn.hello(ME));
    const ack = await c.readHelloAck();
    await c.send({ type: "Verify", signature: new Uint8Array(64), challenge: ack.challenge });
    await assertRefused(c, 1002);
    const res = await response(rs, 2000);
    assert.ok(
      res instanceof AtlasError && res.code === "ERR_RESET",
      `held stream must end in a reset, got ${String(res)}`,
    );
    assert.equal(r.handled.length, 0);
    await assertNoSession(r);
  });
});

test(
  "more than 8 early request streams → the extras are reset, the first 8 are served after VerifyAck",
  T,
  async () => {
    await withNode(async (r, a) => {
      const c = await a.connect(r.addr);
      void c.control;
      const reqs = Array.from({ length: 10 }, () => messageFrame(ME.nodeId, RESPONDER.nodeId));
      const streams: FramedStream[] = [];
      for (const m of reqs) streams.push(await c.openRequest(m));
      await c.send(RawConn.hello(ME));
      const ack = await c.readHelloAck();
      assert.equal(r.handled.length, 0);
      await c.send(RawConn.verify(ME, ack));
      assert.deepEqual(await c.read(), { type: "VerifyAck", status: "ok", trust_level: "unknown" });

      const results = await Promise.all(streams.map((s) => response(s, 5000)));
      const served = results.filter((x) => x !== null && !(x instanceof Error) && x.type === "MessageAck");
      const reset = results.filter((x) => x instanceof AtlasError && x.code === "ERR_RESET");
      assert.equal(
        served.length,
        8,
        `served: ${results.map((x) => (x instanceof Error ? x.message : x?.type)).join(" | ")}`,
      );
      assert.equal(reset.length, 2);
      for (const e of reset) assert.match((e as Error).message, /2001/, "reset with ERR_NOT_VERIFIED");
      assert.equal(r.handled.length, 8);
      // The served ones answer their own request.
      for (let i = 0; i < 10; i++) {
        const x = results[i];
        if (x && !(x instanceof Error) && x.type === "MessageAck") assert.equal(x.msg_id, reqs[i]!.id);
      }
      // Rate limits (docs/protocol.md#trust-rate-limits-and-bans) are not what this test is about: the unknown tier allows 5/s.
    }, { configure: (c) => (c.rate_limit.unknown.per_second = 100) });
  },
);

// ---------------------------------------------------------------------------------------------
// 11. Ban

test("a banned peer gets 4001 'banned until <ts>' instead of HelloAck", T, async () => {
  await withNode(async (r, a) => {
    const until = nowSecs() + 600;
    await r.store.peers.setBan(ME.nodeId, until);
    const c = await a.connect(r.addr);
    await c.send(RawConn.hello(ME));
    await assertRefused(c, 4001, `banned until ${until}`);
    assert.deepEqual(r.node.allSessions(), []);
    assert.deepEqual(await r.store.sessions.list(), []);
    assert.equal((await r.store.peers.get(ME.nodeId))?.ban_until, until, "the ban stays");

    // A ban that has ended is no ban.
    await r.node.ban(ME.nodeId, nowSecs() - 10); // through the node: it keeps bans in memory
    const c2 = await a.connect(r.addr);
    const { verifyAck } = await c2.completeHandshake(ME);
    assert.equal(verifyAck?.type === "VerifyAck" && verifyAck.status, "ok");
  });
});

// ---------------------------------------------------------------------------------------------
// 12. Oversized pre-handshake frame

test("a Hello header declaring 70 000 bytes gets 2002 and the connection is closed", T, async () => {
  await withNode(async (r, a) => {
    const c = await a.connect(r.addr);
    const declared = 70_000;
    assert.ok(declared > PRE_HANDSHAKE_MAX_PAYLOAD);
    const header = new Uint8Array(HEADER_LEN);
    header.set(FRAME_MAGIC, 0);
    header[2] = WIRE_VERSION;
    header[3] = MsgType.Hello;
    new DataView(header.buffer).setUint32(4, declared, false);
    const sendSide = c.watchSendSide(0);
    // The header and the start of a payload: the length alone must be enough to refuse.
    await c.sendRaw(new Uint8Array([...header, ...new Uint8Array(1000).fill(0x41)]));

    const m = await c.read(5000);
    assert.ok(m && m.type === "Error", `expected Error, got ${m?.type}`);
    assert.equal(m.code, 2002);
    assert.match(m.message, /65536-byte limit/);
    assert.equal(await c.read(5000), null, "the Error frame is written with FIN");
    // The responder stopped reading: STOP_SENDING with code 2002 reached us.
    assert.ok(
      sendSide.some((e) => /StreamStopped\(2002\)/.test(e)),
      `send side of stream 0: ${sendSide.join(" → ") || "never stopped"}`,
    );
    const info = await bounded(c.conn.closed, 5000, "connection close");
    assert.equal(info.local, false);
    assert.equal(info.code, 2002);
    await assertNoSession(r);
  });
});
