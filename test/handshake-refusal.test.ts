/**
 * A refused handshake's Error frame reaches the initiator even when the responder is slow to
 * send it: closing a fixed 20 ms after handing the Error to quiche let the CONNECTION_CLOSE
 * overtake it whenever the daemon's next turn came later than that (quiche drops stream data not
 * yet sent once close() is called). The stress fuzzer saw it on a busy machine: up to 13 of 52
 * refusals before the handshake came without their Error frame. Simulated here by holding the
 * responder's sends for 40 ms after it writes the Error, as a busy event loop (or a descheduled
 * process) would.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { ProtocolCode } from "../src/errors.ts";
import type { QuicConnection } from "../src/transport/connection.ts";
import { AdversarialInitiator, RawConn, seededIdentity, startNodeResponder } from "./helpers/handshake-peer.ts";

const RESPONDER = seededIdentity(0x71);
const ME = seededIdentity(0x72);
const HOLD_MS = 40;

/** After `c` finishes stream 0 (the refusal's Error + FIN), its turns wait `ms` before running. */
function slowAfterRefusal(c: QuicConnection, ms: number): void {
  let holdUntil = 0;
  const turn = c.process.bind(c);
  c.process = () => {
    if (Date.now() < holdUntil) return void setTimeout(() => c.process(), 5);
    turn();
  };
  const send = c.native.streamSend.bind(c.native);
  c.native.streamSend = (id: number, data: Uint8Array, fin: boolean) => {
    if (id === 0 && fin) holdUntil = Date.now() + ms;
    return send(id, data, fin);
  };
}

const CASES: { name: string; send: (c: RawConn) => Promise<void>; code: number }[] = [
  {
    name: "undecodable first frame (bad magic)",
    send: (c) => c.sendRaw(Uint8Array.of(0xab, 0x01, 0x01, 0x01, 0, 0, 0, 1, 0x80)),
    code: ProtocolCode.ERR_MESSAGE_REJECTED,
  },
  {
    name: "Hello with protocol_v 2",
    send: (c) => c.send(RawConn.hello(ME, { protocol_v: 2 })),
    code: ProtocolCode.ERR_PROTOCOL_VERSION,
  },
  {
    name: "Ping before the handshake",
    send: (c) => c.send({ type: "Ping", ts: 1, id: 1 }),
    code: ProtocolCode.ERR_NOT_VERIFIED,
  },
];

test(
  "a slow responder's handshake refusal still delivers its Error frame before closing",
  { timeout: 30_000 },
  async (t) => {
    const r = await startNodeResponder({ identity: RESPONDER });
    const accept = r.node.endpoint.onConnection!;
    r.node.endpoint.onConnection = (c) => {
      slowAfterRefusal(c, HOLD_MS);
      accept(c);
    };
    const a = await AdversarialInitiator.create(ME);
    try {
      for (const k of CASES) {
        await t.test(k.name, async () => {
          const c = await a.connect(r.addr);
          await k.send(c);
          const { error, close } = await c.expectRefusal(5000);
          assert.equal(error.code, k.code, `Error frame: ${error.code} ${error.message}`);
          assert.equal(close.code, k.code, "the close carries the same code");
        });
      }
    } finally {
      await a.close();
      await r.close();
    }
  },
);
