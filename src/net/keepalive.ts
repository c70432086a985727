import type { AtlasNode } from "./node.ts";
import type { Session } from "./session.ts";
import { DISCONNECT_IDLE } from "../wire/messages.ts";
import { unixNow } from "../util/time.ts";

/**
 * The daemon's Atlas keepalive (docs/architecture.md#daemon): every `keepalive.interval` a Ping to each live
 * session; `keepalive.max_missed` consecutive misses → Disconnect DISCONNECT_IDLE. It also ends
 * sessions opened for a delivery or a ping after `transport.session_idle` without traffic
 * (sessions from `net connect` are pinned and stay).
 */
export class Keepalive {
  private timer: ReturnType<typeof setInterval> | null = null;
  private inFlight = new Set<Session>();
  private node: AtlasNode;

  constructor(node: AtlasNode) {
    this.node = node;
  }

  start(): void {
    const ms = this.node.config.keepalive.interval * 1000;
    this.timer = setInterval(() => this.tick(), ms);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** One round: idle sessions are closed, the others pinged. */
  tick(): void {
    const cfg = this.node.config;
    const now = Date.now();
    for (const s of this.node.allSessions()) {
      if (!s.pinned && now - s.lastActivity > cfg.transport.session_idle * 1000) {
        void s.disconnect("DISCONNECT_SHUTDOWN", "session idle", "idle");
        continue;
      }
      if (this.inFlight.has(s)) continue;
      this.inFlight.add(s);
      void this.pingOnce(s, cfg.keepalive.interval * 1000).finally(() => this.inFlight.delete(s));
    }
  }

  private async pingOnce(s: Session, timeoutMs: number): Promise<void> {
    const store = this.node.store;
    try {
      await s.ping(timeoutMs);
      if (s.rowId !== null) await store.sessions.pong(s.rowId, unixNow());
    } catch {
      if (!s.isOpen) return;
      s.missedPongs++;
      this.node.log.info("keepalive missed", { peer: s.nodeId.slice(0, 18) + "…", missed: s.missedPongs });
      if (s.rowId !== null) await store.sessions.missed(s.rowId, s.missedPongs).catch(() => {});
      if (s.missedPongs >= this.node.config.keepalive.max_missed) {
        await s.disconnect(DISCONNECT_IDLE, `no Pong to ${s.missedPongs} keepalive Pings`);
      }
    }
  }
}
