/**
 * Issue 16, defect 1, against a real daemon process with its default rate limits: eight
 * authenticated connections × 48 request streams, each sending a 4 MiB Message header and all of
 * the payload but its last byte, are charged at the header, refused and banned. (With the limits
 * lifted, the read budget alone holds: stress/memory.ts, run in CI by test/adversarial.test.ts.)
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { parseAddr } from "../src/transport/addr.ts";
import { cleanupHomes, initHome, killAll, startListener } from "./helpers/cli.ts";
import { memoryAttack, rssOf, rssSampler } from "./helpers/memory-attack.ts";

const MiB = 1024 * 1024;
after(async () => {
  killAll();
  await cleanupHomes();
});

test("unfinished large frames are charged at their header, so the attackers are refused and banned", async () => {
  const a = await initHome("victim");
  const d = await startListener(a.home, [], { cmd: ["daemon"] });
  const pid = d.proc.pid!;
  const idle = rssOf(pid);
  const rss = rssSampler(pid);
  const report = await memoryAttack({ target: parseAddr(d.address)!, conns: 8, streamsPerConn: 48, holdMs: 3000 });
  const growth = (rss.stop() - idle) / MiB;
  // unknown tier: 10 MiB a minute admits two 4 MiB frames per peer; three refusals ban it.
  assert.ok(report.fullySent <= 8 * 2, `${report.fullySent} unfinished frames were read in full`);
  assert.deepEqual(report.ended, { DISCONNECT_BANNED: 8 });
  assert.ok(growth <= 160, `RSS up by ${growth.toFixed(0)} MiB`);
});
