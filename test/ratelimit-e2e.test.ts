/**
 * docs/protocol.md#trust-rate-limits-and-bans against a real daemon process: a flooding peer is answered Error 4001 (with
 * ref_msg_id), then banned (ban_until stored, DISCONNECT_BANNED, handshakes refused), while a
 * second, well-behaved peer keeps full service.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { appendFile } from "node:fs/promises";
import { join } from "node:path";
import { isAtlasError } from "../src/errors.ts";
import { buildMessage, deliverOn } from "../src/net/messaging.ts";
import { parseAddr } from "../src/transport/addr.ts";
import { cleanupHomes, initHome, killAll, runAtlas, startListener } from "./helpers/cli.ts";
import { createTestnet } from "./helpers/testnet.ts";
import { pause } from "./helpers/wait.ts";

const net = createTestnet({ prefix: "atlas-rl-" });
after(async () => {
  killAll();
  await cleanupHomes();
  await net.destroy();
});

/** A peer in this process (to send a burst quickly); it does not listen. */
const client = (name: string) => net.node({ name, listen: false });

test("a flooding peer is limited then banned while a well-behaved peer keeps full service", async () => {
  const a = await initHome("alpha");
  await appendFile(join(a.home, "state", "config.toml"), "[security]\nban_violations = 3\nban_duration_secs = 600\n");
  const d = await startListener(a.home, [], { cmd: ["daemon"] });
  const addr = parseAddr(d.address)!;
  const flooder = await client("flooder");
  const good = await client("good");
  try {
    const fs = await flooder.connectTo(addr);
    const gs = await good.connectTo(addr);
    const results: string[] = [];
    const refs: string[] = [];
    for (let i = 0; i < 12 && fs.isOpen; i++) {
      const m = buildMessage(flooder, a.nodeId, JSON.stringify({ i }));
      try {
        await deliverOn(fs, m, 5000);
        results.push("ack");
      } catch (e) {
        if (isAtlasError(e, "ERR_RATE_LIMITED")) {
          results.push("4001");
          refs.push(m.id);
        } else results.push(isAtlasError(e) ? e.code : String(e));
      }
    }
    // unknown tier: 5 per second, so the burst's first 5 are served, then 4001s until the ban.
    assert.deepEqual(results.slice(0, 5), ["ack", "ack", "ack", "ack", "ack"]);
    assert.deepEqual(results.slice(5, 8), ["4001", "4001", "4001"]);
    assert.equal(await fs.done, "DISCONNECT_BANNED");
    // The well-behaved peer is served throughout, one message per 250 ms.
    for (let i = 0; i < 4; i++) {
      await deliverOn(gs, buildMessage(good, a.nodeId, JSON.stringify({ ok: i })), 5000);
      await pause(250); // well within the unknown tier's 5 per second
    }
    // New handshakes from the banned peer are refused.
    await assert.rejects(
      flooder.connectTo(addr),
      (e: unknown) => isAtlasError(e, "ERR_BANNED") && /banned until \d+/.test((e as Error).message),
    );
    // Database: ban stored, inbox has the 5 served flood messages and the 4 good ones.
    const st = await runAtlas(["net", "peers", "--json"], { home: a.home });
    const rows = JSON.parse(st.stdout) as { node_id: string; ban_until: number | null; banned: boolean }[];
    const f = rows.find((r) => r.node_id === flooder.nodeId)!;
    assert.equal(f.banned, true);
    assert.ok(f.ban_until! > Date.now() / 1000 + 500);
    assert.equal(rows.find((r) => r.node_id === good.nodeId)!.banned, false);
    const inbox = await runAtlas(["net", "inbox", "--json"], { home: a.home });
    const msgs = inbox.stdout.trim().split("\n").map((l) => JSON.parse(l));
    assert.equal(msgs.filter((m) => m.from === flooder.nodeId).length, 5);
    assert.equal(msgs.filter((m) => m.from === good.nodeId).length, 4);
    assert.ok(refs.every((id) => !msgs.some((m) => m.id === id)), "refused messages are not stored");
    // unban by hand: the flooder may connect again.
    const u = await runAtlas(["net", "unban", flooder.nodeId.slice(0, 16)], { home: a.home });
    assert.equal(u.code, 0, u.stderr);
    assert.equal(u.stdout, `Unbanned ${flooder.nodeId}\n`);
    const again = await flooder.connectTo(addr);
    assert.ok(again.isOpen);
    const b = await runAtlas(["net", "ban", flooder.nodeId, "--for", "2m"], { home: a.home });
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stdout, new RegExp(`^Banned ${flooder.nodeId} until \\d{4}-\\d\\d-\\d\\dT`));
    assert.equal(await again.done, "DISCONNECT_BANNED");
  } finally {
    await flooder.close();
    await good.close();
    await flooder.store.close();
    await good.store.close();
    await d.stop();
  }
});
