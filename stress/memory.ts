/**
 * Issue 16 defect 1, as a phase: three waves of 8 authenticated connections × 48 streams of
 * unfinished 4 MiB frames against a daemon whose rate limits are lifted (the read budget alone
 * must hold), a good peer sending throughout. Bounds: peak ≤ idle + 160 MiB, and the third wave's
 * peak ≤ the second's + 10 MiB: memory that a wave leaves behind would show as growth from wave to
 * wave, while the first wave also pays one-time costs (heap growth, code compiled on first use)
 * that made "second ≤ first + 10 MiB" fail by a few MiB on a busy machine with no leak.
 */
import { memoryAttack, rssSampler } from "../test/helpers/memory-attack.ts";
import { count, expect, mib, newRow, type Phase, rss } from "./harness.ts";
import { startGoodPeer } from "./good-peer.ts";
import { NO_RATE_LIMITS, startVictim } from "./victim.ts";

const MiB = 1024 * 1024;

export const memoryPhase: Phase = {
  name: "memory",
  async run(ctx) {
    const row = newRow("memory (8 conns × 48 unfinished 4 MiB frames, 3 waves)");
    const v = await startVictim(NO_RATE_LIMITS);
    const good = await startGoodPeer(v.addr, v.nodeId);
    try {
      await new Promise((r) => setTimeout(r, 1000));
      const idle = rss(v.pid)!;
      row.rssBefore = idle;
      const holdMs = Math.min(20_000, Math.max(3000, ctx.budgetMs / 3));
      const peaks: number[] = [];
      for (let wave = 0; wave < 3; wave++) {
        const sampler = rssSampler(v.pid);
        const r = await memoryAttack({ target: v.addr, conns: 8, streamsPerConn: 48, holdMs });
        peaks.push(sampler.stop());
        row.attempts += 8 * 48;
        count(row, "frame read in full", r.fullySent);
        count(row, "refused (Error 4001, stopped)", r.refused);
        ctx.log(`wave ${wave + 1}: peak ${mib(peaks[wave])}, ${r.fullySent} read in full, ${r.refused} refused`);
      }
      const served = await good.stop();
      count(row, "good peer messages acked", served.acked);
      row.rssAfter = rss(v.pid);
      row.notes.push(
        `idle ${mib(idle)}, peaks ${peaks.map(mib).join(" / ")}, good peer slowest ${served.slowestMs} ms`,
      );
      expect(row, peaks[0]! - idle <= 160 * MiB, `first wave peak ≤ idle + 160 MiB (${mib(peaks[0]! - idle)})`);
      const growth = peaks[2]! - peaks[1]!;
      expect(row, growth <= 10 * MiB, `third wave ≤ second + 10 MiB (${mib(growth)})`);
      expect(row, served.failed === 0, `good peer never failed (${served.failed} failures)`);
      return row;
    } finally {
      await good.stop().catch(() => {});
      await v.stop();
    }
  },
};
