/**
 * The fuzzer's seeds: one valid message of every wire type (docs/protocol.md#messages), built with real field
 * values and encoded by src/wire, so each mutant starts one mutation away from a frame the daemon
 * must accept. Seeds are made per attacking identity: its Messages come from it and go to the
 * victim, so a mutant that stays a valid Message is one the daemon may acknowledge.
 */
import { randomBytes } from "node:crypto";
import { uuidv7 } from "uuidv7";
import type { Identity } from "../src/identity/identity.ts";
import { encodeFrame } from "../src/wire/frame.ts";
import { type MsgTypeName, PROTOCOL_V, type WireMessage } from "../src/wire/messages.ts";

export interface Seed {
  type: MsgTypeName;
  msg: WireMessage;
  frame: Uint8Array;
}

const now = (): number => Math.floor(Date.now() / 1000);
const bin = (n: number): Uint8Array => new Uint8Array(randomBytes(n));
const ADDR = "127.0.0.1:4433";
const ADDR6 = "[::1]:4433";

/** One valid message of every type, from `me` (as the sender, where a field says who) to `victim`. */
export function seedMessages(me: Identity, victim: string): WireMessage[] {
  const card = {
    node_id: me.nodeId,
    name: "fuzzer",
    skills: ["fuzz", "test"],
    public_key: me.publicKey,
    protocol_v: PROTOCOL_V,
    timestamp: now(),
    challenge: bin(32),
    listen_addrs: [ADDR, ADDR6],
    relays: [`${victim}@${ADDR}`],
    agent: "atlas-fuzz/1",
    features: ["punch/1"],
  };
  const msgId = () => `msg_${uuidv7()}`;
  return [
    { type: "Hello", ...card },
    { type: "HelloAck", ...card, signature: bin(64), observed_addr: ADDR },
    { type: "Verify", signature: bin(64), challenge: bin(32) },
    { type: "VerifyAck", status: "ok", trust_level: "unknown" },
    { type: "Message", id: msgId(), from: me.nodeId, to: victim, timestamp: now(), body: '{"n":1,"s":"x"}' },
    {
      type: "Message",
      id: msgId(),
      from: me.nodeId,
      to: victim,
      timestamp: now(),
      reply_to: msgId(),
      topic: "fuzz",
      body: '[1,2.5,"three",{"four":null}]',
    },
    { type: "MessageAck", msg_id: msgId(), status: "received" },
    { type: "BootstrapRegister", node_id: me.nodeId, address: ADDR, public_address: ADDR, timestamp: now() },
    { type: "BootstrapDiscover", skill: "fuzz", limit: 10 },
    {
      type: "BootstrapPeers",
      peers: [{
        node_id: me.nodeId,
        public_key: me.publicKey,
        address: ADDR,
        relays: [],
        name: "p",
        skills: ["s"],
        last_seen: now(),
        record: { data: bin(40), signature: bin(64) },
      }],
    },
    { type: "RelayAnnounce", node_id: me.nodeId, timestamp: now() },
    { type: "RelayConnect", source_id: me.nodeId, target_id: victim },
    { type: "RelayReady", status: "ready", session: 7 },
    { type: "RelayError", code: 1, reason: "not registered" },
    { type: "PunchOffer", nonce: bin(12), candidates: [ADDR, ADDR6], attempt: 1 },
    { type: "PunchAnswer", nonce: bin(12), candidates: [ADDR] },
    { type: "PunchSync", nonce: bin(12) },
    { type: "Error", code: 2003, message: "fuzz", ref_msg_id: msgId() },
    { type: "Ping", ts: now(), id: 42 },
    { type: "Pong", ts: now(), echo: now(), id: 42 },
    { type: "Disconnect", reason: "DISCONNECT_SHUTDOWN", message: "bye" },
  ];
}

/** The seeds, encoded (encodeFrame validates each: a seed that is not valid throws here). */
export function seeds(me: Identity, victim: string): Seed[] {
  return seedMessages(me, victim).map((msg) => ({ type: msg.type, msg, frame: encodeFrame(msg) }));
}
