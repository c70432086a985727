/**
 * The memory attack of issue 16 (defect 1), for the test and the adversarial suite: authenticated
 * connections from throwaway identities each open many request streams and send, on every one, a
 * Message header declaring the largest payload and then all of it but the last byte — so no frame
 * ever completes and nothing reaches a rate limiter that counts complete frames.
 */
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defaultConfig } from "../../src/config/defaults.ts";
import { identityFromSeed } from "../../src/identity/identity.ts";
import { generateSeed } from "../../src/identity/keys.ts";
import { AtlasNode } from "../../src/net/node.ts";
import { openStore } from "../../src/store/index.ts";
import type { SockAddr } from "../../src/transport/addr.ts";
import { HEADER_LEN, MAX_PAYLOAD, MsgType } from "../../src/wire/messages.ts";
import { pause } from "./wait.ts";

/** Resident memory of a process in bytes (Linux /proc). */
export function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}

/** Samples a process's RSS every `everyMs` until stopped; `peak` is the highest seen. */
export function rssSampler(pid: number, everyMs = 50): { peak: () => number; stop: () => number } {
  let peak = rssOf(pid);
  const t = setInterval(() => {
    try {
      peak = Math.max(peak, rssOf(pid));
    } catch {
      // the process is gone: the test notices on its own
    }
  }, everyMs);
  return {
    peak: () => peak,
    stop: () => (clearInterval(t), peak),
  };
}

/** A header declaring a Message of `len` payload bytes, followed by `len - 1` of them. */
export function unfinishedFrame(len = MAX_PAYLOAD): Uint8Array {
  const b = new Uint8Array(HEADER_LEN + len - 1);
  b.set([0xac, 0x01, 0x01, MsgType.Message]);
  new DataView(b.buffer).setUint32(4, len);
  return b;
}

export interface AttackOptions {
  target: SockAddr;
  conns: number;
  streamsPerConn: number;
  /** How long the attackers keep their connections open after starting to send. */
  holdMs: number;
}

export interface AttackReport {
  /** Sessions that completed the handshake. */
  sessions: number;
  /** Streams on which the whole unfinished frame was accepted by the attacker's QUIC stack. */
  fullySent: number;
  /** Streams the daemon stopped or reset (or that failed otherwise). */
  refused: number;
  /** How the sessions that ended before the attackers left ended (Disconnect reason → count). */
  ended: Record<string, number>;
}

/** Run one wave: connect, send, hold, then close everything. */
export async function memoryAttack(o: AttackOptions): Promise<AttackReport> {
  const dir = await mkdtemp(join(tmpdir(), "atlas-memattack-"));
  const nodes: AtlasNode[] = [];
  const frame = unfinishedFrame();
  const report: AttackReport = { sessions: 0, fullySent: 0, refused: 0, ended: {} };
  let leaving = false;
  try {
    const writes: Promise<void>[] = [];
    for (let i = 0; i < o.conns; i++) {
      const node = await AtlasNode.start({
        config: defaultConfig(),
        identity: identityFromSeed(generateSeed()),
        profile: { name: `attacker-${i}`, bio: "", skills: [] },
        store: await openStore(join(dir, `a${i}.db`)),
        listen: false,
        host: "127.0.0.1",
        port: 0,
      });
      nodes.push(node);
      const s = await node.connectTo(o.target);
      report.sessions++;
      void s.done.then((why) => {
        if (!leaving) report.ended[why] = (report.ended[why] ?? 0) + 1;
      });
      for (let k = 0; k < o.streamsPerConn; k++) {
        const st = s.conn.openStream();
        writes.push(st.write(frame).then(() => void report.fullySent++, () => void report.refused++));
      }
    }
    await pause(o.holdMs); // the attack holds its streams open this long
    return report;
  } finally {
    leaving = true;
    await Promise.all(nodes.map((n) => n.close().catch(() => {})));
    await Promise.all(nodes.map((n) => n.store.close()));
    await rm(dir, { recursive: true, force: true });
  }
}
