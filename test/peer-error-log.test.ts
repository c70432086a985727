/**
 * A peer's Error frames on the control stream are not rate limited (they are not requests), and
 * each used to be logged: the stress suite's floods phase had a daemon write ~100 bytes of log per
 * 25-byte frame. They are logged within a budget now: a few lines per minute and session, then one
 * saying how many were not.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { PEER_ERROR_LOG_BURST } from "../src/config/durations.ts";
import { ProtocolCode } from "../src/errors.ts";
import { createLogger, LogBudget } from "../src/util/log.ts";
import { encodeFrame } from "../src/wire/frame.ts";
import { AdversarialInitiator, nowSecs, seededIdentity, startNodeResponder } from "./helpers/handshake-peer.ts";

test("the log budget lets a burst through per window and reports the count it dropped with the next line", () => {
  let t = 0;
  const b = new LogBudget(2, 1000, () => t);
  assert.deepEqual(b.take(), { suppressed: 0 });
  assert.deepEqual(b.take(), { suppressed: 0 });
  assert.equal(b.take(), null);
  t = 999;
  assert.equal(b.take(), null);
  t = 1000;
  assert.deepEqual(b.take(), { suppressed: 2 });
  assert.deepEqual(b.take(), { suppressed: 0 });
});

test("a flood of Error frames on the control stream costs a few log lines, and the session goes on", {
  timeout: 30_000,
}, async () => {
  const lines: string[] = [];
  const log = createLogger("debug", "text", (l) => lines.push(l));
  const r = await startNodeResponder({ identity: seededIdentity(0x81), log });
  const me = seededIdentity(0x82);
  const a = await AdversarialInitiator.create(me);
  try {
    const c = await a.connect(r.addr);
    await c.completeHandshake(me);
    const flood = encodeFrame({ type: "Error", code: ProtocolCode.ERR_INTERNAL, message: "flood" });
    await c.sendRaw(Buffer.concat(Array.from({ length: 2000 }, () => flood)));
    await c.send({ type: "Ping", ts: nowSecs(), id: 9 });
    let pong = await c.read(5000);
    while (pong && pong.type !== "Pong") pong = await c.read(5000);
    assert.equal(pong?.type === "Pong" && pong.id, 9, "the session answers after the flood");
    const logged = lines.filter((l) => l.includes("peer reported an error"));
    assert.equal(logged.length, PEER_ERROR_LOG_BURST, `${logged.length} lines for 2000 Error frames`);
  } finally {
    await a.close();
    await r.close();
  }
});
