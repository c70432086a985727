/**
 * The frame every attacking phase shares: a victim daemon with `config`, a good peer sending
 * throughout, the victim's RSS before (settled) and after, and the same closing assertions — the
 * daemon never died and still answers `atlas status`, the good peer never failed, RSS grew by at
 * most the phase's stated bound.
 */
import { rssSampler } from "../test/helpers/memory-attack.ts";
import { runAtlas } from "../test/helpers/cli.ts";
import { count, expect, mib, type PhaseRow, rss } from "./harness.ts";
import { startGoodPeer } from "./good-peer.ts";
import { startVictim, type Victim } from "./victim.ts";

const MiB = 1024 * 1024;
/** Let the daemon's start-up allocations settle before the baseline is taken. */
const SETTLE_MS = 1000;

export interface AttackOptions {
  /** Appended to the victim's config.toml. */
  config: string;
  /** RSS after the attack may exceed RSS before by at most this much. */
  rssBoundMiB: number;
}

/** `atlas status` answers (the daemon's control socket and event loop are alive). */
export async function daemonAnswers(v: Victim): Promise<string | null> {
  try {
    const r = await runAtlas(["status", "--json"], { home: v.home, timeoutMs: 15_000 });
    if (r.code !== 0) return `atlas status exited ${r.code}: ${r.stderr.trim().slice(0, 200)}`;
    return JSON.parse(r.stdout).running === true ? null : "atlas status: daemon not running";
  } catch (e) {
    return `atlas status: ${(e as Error).message.slice(0, 200)}`;
  }
}

export async function underAttack(
  row: PhaseRow,
  o: AttackOptions,
  attack: (v: Victim) => Promise<void>,
): Promise<PhaseRow> {
  const v = await startVictim(o.config);
  let died: string | null = null;
  v.daemon.proc.once("exit", (code, sig) => (died = `daemon exited (code ${code}, signal ${sig})`));
  const good = await startGoodPeer(v.addr, v.nodeId);
  try {
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    row.rssBefore = rss(v.pid);
    const sampler = rssSampler(v.pid, 250);
    try {
      await attack(v);
    } finally {
      row.notes.push(`peak RSS ${mib(sampler.stop())}`);
    }
    const status = died ?? (await daemonAnswers(v));
    const served = await good.stop();
    row.rssAfter = rss(v.pid);
    count(row, "good peer acked", served.acked);
    row.notes.push(`good peer: ${served.acked} acked, ${served.failed} failed, slowest ${served.slowestMs} ms`);
    expect(row, died === null, died ?? "");
    expect(row, status === null, `daemon answers atlas status (${status})`);
    expect(row, served.failed === 0, `good peer never failed (${served.failed} failures)`);
    const grew = (row.rssAfter ?? Infinity) - (row.rssBefore ?? 0);
    expect(row, grew <= o.rssBoundMiB * MiB, `RSS after ≤ before + ${o.rssBoundMiB} MiB (grew ${mib(grew)})`);
    return row;
  } finally {
    await good.stop().catch(() => {});
    await v.stop();
  }
}
