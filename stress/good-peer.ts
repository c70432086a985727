/**
 * A well-behaved peer that keeps sending a message every 200 ms to the victim while a phase
 * attacks it: each must be acknowledged within 5 s. Failures are counted, not thrown.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defaultConfig } from "../src/config/defaults.ts";
import { identityFromSeed } from "../src/identity/identity.ts";
import { generateSeed } from "../src/identity/keys.ts";
import { buildMessage, deliverOn } from "../src/net/messaging.ts";
import { AtlasNode } from "../src/net/node.ts";
import type { Session } from "../src/net/session.ts";
import { openStore } from "../src/store/index.ts";
import type { SockAddr } from "../src/transport/addr.ts";

export interface GoodPeerReport {
  acked: number;
  failed: number;
  slowestMs: number;
}

export async function startGoodPeer(target: SockAddr, to: string): Promise<{ stop: () => Promise<GoodPeerReport> }> {
  const dir = await mkdtemp(join(tmpdir(), "atlas-good-"));
  const node = await AtlasNode.start({
    config: defaultConfig(),
    identity: identityFromSeed(generateSeed()),
    profile: { name: "good", bio: "", skills: [] },
    store: await openStore(join(dir, "g.db")),
    listen: false,
    host: "127.0.0.1",
    port: 0,
  });
  const report: GoodPeerReport = { acked: 0, failed: 0, slowestMs: 0 };
  let running = true;
  let session: Session | null = null;
  const loop = (async () => {
    while (running) {
      const t0 = performance.now();
      try {
        if (!session?.isOpen) session = await node.connectTo(target);
        await deliverOn(session, buildMessage(node, to, JSON.stringify({ n: report.acked })), 5000);
        report.acked++;
        report.slowestMs = Math.max(report.slowestMs, Math.round(performance.now() - t0));
      } catch {
        report.failed++;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  let stopped: Promise<GoodPeerReport> | null = null;
  return {
    stop: () =>
      stopped ??= (async () => {
        running = false;
        await loop;
        await node.close().catch(() => {});
        await node.store.close();
        await rm(dir, { recursive: true, force: true });
        return report;
      })(),
  };
}
