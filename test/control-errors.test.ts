/**
 * A malformed frame on the control stream after the handshake (docs/protocol.md#messages): the node answers Error
 * with the right code (1001 bad version, 2002 oversize, 2003 anything else), written with FIN,
 * then closes the connection with DISCONNECT_PROTOCOL_ERROR as the close reason (the control
 * stream is finished by then: docs/protocol.md "Errors on the control stream"). Real QUIC on
 * 127.0.0.1; the attacker completes an honest handshake, then writes raw bytes. The node must stay
 * healthy: a good peer still gets its Pong afterwards.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { encode } from "@msgpack/msgpack";
import { ProtocolCode } from "../src/errors.ts";
import type { SessionRow, Store } from "../src/store/index.ts";
import {
  DISCONNECT_PROTOCOL_ERROR,
  FRAME_MAGIC,
  HEADER_LEN,
  MAX_PAYLOAD,
  MsgType,
  WIRE_VERSION,
} from "../src/wire/messages.ts";
import {
  AdversarialInitiator,
  bounded,
  nowSecs,
  seededIdentity,
  startNodeResponder,
} from "./helpers/handshake-peer.ts";
import { waitFor } from "./helpers/wait.ts";

const RESPONDER = seededIdentity(0x61);
const ATTACKER = seededIdentity(0x62);
const GOOD = seededIdentity(0x63);

/** A frame with every header field given by hand, so it can be wrong in any of them. */
function rawFrame(
  o: { magic?: readonly number[]; version?: number; type?: number; length?: number; payload?: Uint8Array },
): Uint8Array {
  const payload = o.payload ?? encode({ ts: nowSecs(), id: 7 });
  const header = new Uint8Array(HEADER_LEN);
  header.set(o.magic ?? FRAME_MAGIC, 0);
  header[2] = o.version ?? WIRE_VERSION;
  header[3] = o.type ?? MsgType.Ping;
  new DataView(header.buffer).setUint32(4, o.length ?? payload.length, false);
  return new Uint8Array([...header, ...payload]);
}

/** The latest session row with `nodeId`, once it is closed. */
async function closedRow(store: Store, nodeId: string): Promise<SessionRow> {
  return await waitFor("the session row closed", async () => {
    const [row] = await store.sessions.list({ nodeId, limit: 1 });
    return row && row.closed_at !== null && row;
  }, { intervalMs: 10 });
}

const CASES: { name: string; bytes: Uint8Array; code: number }[] = [
  { name: "bad magic", bytes: rawFrame({ magic: [0xab, 0x01] }), code: ProtocolCode.ERR_MESSAGE_REJECTED },
  { name: "bad version", bytes: rawFrame({ version: 2 }), code: ProtocolCode.ERR_PROTOCOL_VERSION },
  { name: "unknown type", bytes: rawFrame({ type: 0x77 }), code: ProtocolCode.ERR_MESSAGE_REJECTED },
  {
    name: "payload not a map",
    bytes: rawFrame({ payload: encode([1, 2, 3]) }),
    code: ProtocolCode.ERR_MESSAGE_REJECTED,
  },
  {
    name: "oversize header",
    // The header declares one byte over 4 MiB; a start of payload follows (the length alone must do).
    bytes: rawFrame({ type: MsgType.Message, length: MAX_PAYLOAD + 1, payload: new Uint8Array(1000).fill(0x41) }),
    code: ProtocolCode.ERR_PAYLOAD_TOO_LARGE,
  },
];

test("a malformed control frame after the handshake gets an Error with its code, then DISCONNECT_PROTOCOL_ERROR", {
  timeout: 60_000,
}, async (t) => {
  const r = await startNodeResponder({ identity: RESPONDER });
  const attacker = await AdversarialInitiator.create(ATTACKER);
  const good = await AdversarialInitiator.create(GOOD);
  try {
    for (const c of CASES) {
      await t.test(c.name, async () => {
        const raw = await attacker.connect(r.addr);
        const { verifyAck } = await raw.completeHandshake(ATTACKER);
        assert.equal(verifyAck?.type, "VerifyAck");
        await waitFor("session open", () => r.node.sessionsWith(ATTACKER.nodeId).length === 1, {
          timeoutMs: 5000,
          intervalMs: 5,
        });
        await raw.sendRaw(c.bytes);

        const m = await raw.read(5000);
        assert.ok(m && m.type === "Error", `expected an Error frame, got ${m ? m.type : "end of stream"}`);
        assert.equal(m.code, c.code, `Error frame: ${m.code} ${m.message}`);
        assert.equal(await raw.read(5000), null, "the Error frame is the last one on the control stream (FIN)");
        const close = await bounded(raw.conn.closed, 5000, "connection close after the Error frame");
        assert.equal(close.local, false, "the node closes the connection");
        assert.equal(close.timedOut, false);
        assert.equal(close.app, true, "an application close");
        assert.equal(close.code, c.code, "the close carries the Error's code");
        assert.equal(close.reason, DISCONNECT_PROTOCOL_ERROR, "…and the Disconnect reason");

        // The node's side: the session ended for that reason, and the row says so.
        await waitFor("session closed", () => r.node.sessionsWith(ATTACKER.nodeId).length === 0, {
          timeoutMs: 5000,
          intervalMs: 5,
        });
        const row = await bounded(closedRow(r.store, ATTACKER.nodeId), 5000, "session row closed");
        assert.equal(row.close_reason, DISCONNECT_PROTOCOL_ERROR);

        // Still healthy: a good peer completes a handshake and gets its Pong.
        const ok = await good.connect(r.addr);
        await ok.completeHandshake(GOOD);
        await ok.send({ type: "Ping", ts: nowSecs(), id: 41 });
        const pong = await ok.read(5000);
        assert.ok(pong && pong.type === "Pong" && pong.id === 41, `expected Pong 41, got ${JSON.stringify(pong)}`);
        ok.close();
      });
    }
    await t.test("control stream reset by the peer: Disconnect DISCONNECT_PROTOCOL_ERROR", async () => {
      const raw = await attacker.connect(r.addr);
      await raw.completeHandshake(ATTACKER);
      await waitFor("session open", () => r.node.sessionsWith(ATTACKER.nodeId).length === 1, {
        timeoutMs: 5000,
        intervalMs: 5,
      });
      raw.control.stream.reset(0);
      const m = await raw.read(5000);
      assert.ok(m && m.type === "Disconnect", `expected Disconnect, got ${m ? m.type : "end of stream"}`);
      assert.equal(m.reason, DISCONNECT_PROTOCOL_ERROR);
      const close = await bounded(raw.conn.closed, 5000, "connection close after the Disconnect");
      assert.equal(close.reason, DISCONNECT_PROTOCOL_ERROR);
    });
  } finally {
    await good.close();
    await attacker.close();
    await r.close();
  }
});

test("an Atlas peer refused this way records DISCONNECT_PROTOCOL_ERROR too", { timeout: 30_000 }, async () => {
  const r = await startNodeResponder({ identity: RESPONDER });
  const me = await startNodeResponder({ identity: GOOD });
  try {
    const s = await me.node.connectTo(r.addr, { expectedNodeId: RESPONDER.nodeId });
    const started = Date.now();
    await s.control.stream.write(rawFrame({ version: 9 }));
    const reason = await bounded(s.done, 5000, "our session's end");
    assert.equal(reason, DISCONNECT_PROTOCOL_ERROR);
    // Our side closes on the Error and FIN, without waiting out the responder's linger.
    assert.ok(Date.now() - started < 1000, `closed after ${Date.now() - started} ms`);
    const row = await bounded(closedRow(me.store, RESPONDER.nodeId), 5000, "our session row closed");
    assert.equal(row.close_reason, DISCONNECT_PROTOCOL_ERROR);
  } finally {
    await me.close();
    await r.close();
  }
});
