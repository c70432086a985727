/**
 * The daemon's outbox delivery (SPEC §14 "nothing lost"): polls the `outbox` table (the CLI
 * queues into it directly), delivers due messages and writes every final outcome to
 * `deliveries`.
 *
 * - Every `outbox.poll_interval_ms` (and at once on kick()), due rows are claimed
 *   (`delivering`) and delivered over dialPeer (a live session is reused), at most one attempt
 *   in flight per target and `concurrency` overall.
 * - MessageAck → `delivered`. A permanent refusal (handshake rejected, banned, invalid identity,
 *   message rejected) → `failed`. Anything else → retried after `outbox.backoff_initial` seconds,
 *   doubling up to `outbox.backoff_max`, until `expires_at` (created_at + `outbox.ttl`) →
 *   `expired`. While a target is backing off, its other messages wait too (one dial per target
 *   per backoff step, not one per message).
 * - Crash safety: a row is only removed together with its `deliveries` entry (one transaction);
 *   rows left `delivering` by a crash are re-queued at start. Delivery is therefore at least
 *   once, and the receiver's inbox (unique by sender and message ID) makes it exactly once.
 */
import { shortNodeId } from "../identity/node-id.ts";
import type { DeliveryOutcome, OutboxRow } from "../store/index.ts";
import type { Logger } from "../util/log.ts";
import { sleep, unixNow, within } from "../util/time.ts";
import { dialPeer } from "./dial.ts";
import { buildMessage, deliverOn, isPermanentRefusal, shortTarget, targetNodeId } from "./messaging.ts";
import type { AtlasNode } from "./node.ts";

export interface OutboxWorkerOptions {
  /** Attempts in flight at once, all targets together (default 8). */
  concurrency?: number;
  /** Rows read per poll (default 500). */
  batch?: number;
}

export class OutboxWorker {
  readonly node: AtlasNode;
  readonly concurrency: number;
  private readonly batch: number;
  private log: Logger;
  private stopped = true;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private starting: Promise<void> = Promise.resolve();
  private polling: Promise<void> | null = null;
  private again = false;
  /** msg id → its attempt. */
  private inflight = new Map<string, Promise<void>>();
  /** Target keys with an attempt in flight. */
  private busy = new Set<string>();
  /** Target key → Date.now() before which its messages wait (after a retryable failure). */
  private blocked = new Map<string, number>();
  /** Bare address target → the node ID that answered there (so its live session is reused). */
  private learnt = new Map<string, string>();

  constructor(node: AtlasNode, log: Logger = node.log, opts: OutboxWorkerOptions = {}) {
    this.node = node;
    this.log = log;
    this.concurrency = Math.max(1, opts.concurrency ?? 8);
    this.batch = Math.max(1, opts.batch ?? 500);
  }

  /** Re-queue attempts a crash left in flight, then poll. Idempotent. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.starting = (async () => {
      try {
        const n = await this.node.store.outbox.requeueDelivering();
        if (n > 0) this.log.info("outbox: re-queued messages left in flight by a crash", { count: n });
      } catch (e) {
        this.log.warn("outbox: could not re-queue in-flight messages", { error: (e as Error).message });
      }
    })();
    this.schedule(0);
  }

  /** Poll now (e.g. right after something was queued). */
  kick(): void {
    if (!this.stopped) this.schedule(0);
  }

  /**
   * Stop polling and wait up to `timeoutMs` for attempts in flight. An attempt still running
   * after that ends when the node closes; if its outcome cannot be written any more, its row
   * stays `delivering` and is re-queued at the next start (the receiver de-duplicates).
   */
  async stop(timeoutMs = 1000): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await within(Promise.allSettled([this.polling ?? Promise.resolve(), ...this.inflight.values()]), timeoutMs);
  }

  /** Attempts in flight (diagnostics, `atlas status`). */
  get inFlight(): number {
    return this.inflight.size;
  }

  private schedule(ms: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.poll(), ms);
  }

  private async poll(): Promise<void> {
    if (this.stopped) return;
    if (this.polling) {
      this.again = true;
      return;
    }
    this.polling = (async () => {
      await this.starting;
      do {
        this.again = false;
        try {
          await this.pollOnce();
        } catch (e) {
          this.log.warn("outbox: poll failed", { error: (e as Error).message });
        }
      } while (this.again && !this.stopped);
    })();
    try {
      await this.polling;
    } finally {
      this.polling = null;
      if (!this.stopped) this.schedule(this.node.config.outbox.poll_interval_ms);
    }
  }

  private async pollOnce(): Promise<void> {
    if (this.inflight.size >= this.concurrency) return;
    const outbox = this.node.store.outbox;
    const now = unixNow();
    const rows = await outbox.due(now, this.batch);
    for (const row of rows) {
      if (this.stopped) return;
      if (this.inflight.has(row.id)) continue;
      if (row.expires_at <= now) {
        await this.finish(row, { status: "expired", finished_at: now, detail: `not delivered within outbox.ttl (${row.expires_at - row.created_at} s)` });
        continue;
      }
      if (this.inflight.size >= this.concurrency) continue; // still expire the rest
      const key = this.keyOf(row.target);
      if (this.busy.has(key)) continue;
      const until = this.blocked.get(key);
      if (until !== undefined) {
        if (until > Date.now()) continue;
        this.blocked.delete(key);
      }
      if (!(await outbox.markDelivering(row.id))) continue;
      this.busy.add(key);
      const p = this.attempt(row, key)
        .catch((e) => this.log.error("outbox: attempt failed unexpectedly", { msg: row.id, error: (e as Error).message }))
        .finally(() => {
          this.busy.delete(key);
          this.inflight.delete(row.id);
          if (!this.stopped) this.schedule(0); // the target's next message, without waiting a poll interval
        });
      this.inflight.set(row.id, p);
    }
  }

  private keyOf(target: string): string {
    return targetNodeId(target) ?? this.learnt.get(target) ?? target;
  }

  private async attempt(row: OutboxRow, key: string): Promise<void> {
    const cfg = this.node.config;
    const learnt = this.learnt.get(row.target);
    const dialTarget = learnt ? `${learnt}@${row.target}` : row.target;
    try {
      const { session } = await dialPeer(this.node, dialTarget);
      if (!targetNodeId(row.target)) this.learnt.set(row.target, session.nodeId);
      const msg = buildMessage(this.node, session.nodeId, row.body, {
        msgId: row.id,
        timestamp: row.created_at,
        topic: row.topic ?? undefined,
        replyTo: row.reply_to ?? undefined,
      });
      await deliverOn(session, msg, cfg.transport.request_timeout * 1000);
      this.blocked.delete(key);
      const detail = [session.path === "relay" && session.relay ? `via ${session.relay}` : null, targetNodeId(row.target) ? null : `to ${session.nodeId}`].filter(Boolean).join(", ");
      this.log.info("outbox: message delivered", { msg: row.id, to: shortNodeId(session.nodeId), path: session.path, attempts: row.attempts + 1 });
      await this.finish(row, { status: "delivered", finished_at: unixNow(), path: session.path, detail: detail || null });
    } catch (e) {
      const why = (e as Error)?.message ?? String(e);
      if (isPermanentRefusal(e)) {
        this.log.warn("outbox: message refused, not retrying", { msg: row.id, target: shortTarget(row.target), error: why });
        await this.finish(row, { status: "failed", finished_at: unixNow(), detail: why });
        return;
      }
      const now = unixNow();
      if (now >= row.expires_at) {
        await this.finish(row, { status: "expired", finished_at: now, attempts: row.attempts + 1, detail: `not delivered within outbox.ttl; last attempt: ${why}` });
        return;
      }
      // backoff_initial doubling up to backoff_max (seconds), never past the expiry time
      const delay = Math.min(cfg.outbox.backoff_max, cfg.outbox.backoff_initial * 2 ** Math.min(row.attempts, 30));
      this.blocked.set(key, Date.now() + delay * 1000);
      const next = Math.min(Math.ceil(now + delay), row.expires_at);
      this.log.info("outbox: delivery failed, will retry", { msg: row.id, target: shortTarget(row.target), attempts: row.attempts + 1, retry_in_s: delay, error: why });
      await this.write(row, () => this.node.store.outbox.markAttempt(row.id, next));
    }
  }

  private async finish(row: OutboxRow, o: DeliveryOutcome): Promise<void> {
    await this.write(row, () => this.node.store.outbox.complete(row.id, o));
  }

  /** A store write, tried twice; on failure the row stays as it is (re-queued at next start). */
  private async write(row: OutboxRow, fn: () => Promise<unknown>): Promise<void> {
    for (let i = 0; ; i++) {
      try {
        await fn();
        return;
      } catch (e) {
        if (i >= 1 || this.stopped) {
          this.log.error("outbox: could not record an outcome", { msg: row.id, error: (e as Error).message });
          return;
        }
        await sleep(200);
      }
    }
  }
}
