/**
 * The daemon's outbox delivery (README.md#commands "nothing lost"): polls the `outbox` table (the CLI
 * queues into it directly), delivers due messages and writes every final outcome to
 * `deliveries`.
 *
 * - Every `outbox.poll_interval_ms` (and at once on kick()), due rows are claimed
 *   (`delivering`, one transaction per poll) and delivered over dialPeer (a live session is
 *   reused): up to `outbox.window` messages in flight per target once a session with it is live
 *   (one while it is being dialled, so a backlog does not start a dial per message), and
 *   `concurrency` overall. Outcomes are group-committed (one transaction per event-loop turn).
 * - Order per target: messages are claimed and sent in queue order (next_attempt_at,
 *   created_at, id), each on its own stream; the receiver stores them in the order their streams
 *   arrive. So the inbox keeps the queue order while every attempt succeeds; a message whose
 *   attempt fails is retried after the others already sent, and then lands after them.
 * - MessageAck → `delivered`. A permanent refusal (handshake rejected, banned, invalid identity,
 *   message rejected) → `failed`. Anything else → retried after `outbox.backoff_initial` seconds,
 *   doubling up to `outbox.backoff_max`, until `expires_at` (created_at + `outbox.ttl`) →
 *   `expired`. While a target is backing off, its other messages wait too (one dial per target
 *   per backoff step, not one per message).
 * - Pacing: messages to one target are spaced to stay inside the receiver's inbound rate limits
 *   (Pacer), so a burst of queued messages never gets this node banned.
 * - Crash safety: a row is only removed together with its `deliveries` entry (one transaction);
 *   rows left `delivering` by a crash are re-queued at start. Delivery is therefore at least
 *   once, and the receiver's inbox (unique by sender and message ID) makes it exactly once.
 */
import { OUTCOME_RETRY_MS, RATE_LIMITED_RETRY_MIN_S, RATE_WINDOW_MS, SERVICE_STOP_MS } from "../config/durations.ts";
import { isAtlasError } from "../errors.ts";
import { shortNodeId } from "../identity/node-id.ts";
import type { DeliveryOutcome, OutboxHead, OutboxRow } from "../store/index.ts";
import type { Logger } from "../util/log.ts";
import { sleep, unixNow, within } from "../util/time.ts";
import { utf8Length } from "../wire/utf8.ts";
import { dialPeer } from "./dial.ts";
import { buildMessage, deliverOn, isPermanentRefusal, shortTarget, targetNodeId } from "./messaging.ts";
import type { AtlasNode } from "./node.ts";
import type { Session } from "./session.ts";

/**
 * Outgoing pacing for one target, so that the worker never trips the receiver's inbound limits
 * (docs/protocol.md#trust-rate-limits-and-bans: a token bucket per second, a sliding minute of requests and payload bytes; three
 * refusals ban us for 10 minutes, and a ban fails every queued message). We cannot know the tier
 * the receiver gives us, so we assume the lowest (`rate_limit.unknown` of our own config, the
 * defaults every node starts from) and keep a margin for network jitter: 80 % of the per-second
 * rate, 90 % of the per-minute budgets.
 */
export class Pacer {
  private tokens: number;
  private refilledAt: number;
  private sent: { at: number; bytes: number }[] = [];
  private readonly rate: number;
  private readonly burst: number;
  private readonly perMinute: number;
  private readonly bytesPerMinute: number;

  constructor(lim: { per_second: number; per_minute: number; bytes_per_minute: number }, now = Date.now()) {
    this.rate = Math.max(0.1, lim.per_second * 0.8);
    this.burst = Math.max(1, Math.floor(lim.per_second * 0.8));
    this.perMinute = Math.max(1, Math.floor(lim.per_minute * 0.9));
    this.bytesPerMinute = Math.max(1, Math.floor(lim.bytes_per_minute * 0.9));
    this.tokens = this.burst;
    this.refilledAt = now;
  }

  private refill(now: number): void {
    this.tokens = Math.min(this.burst, this.tokens + (Math.max(0, now - this.refilledAt) * this.rate) / 1000);
    this.refilledAt = now;
    while (this.sent.length > 0 && this.sent[0]!.at <= now - RATE_WINDOW_MS) this.sent.shift();
  }

  /** May a request of `bytes` go now? (A single request larger than the byte budget goes alone.) */
  ready(bytes: number, now = Date.now()): boolean {
    this.refill(now);
    if (this.tokens < 1 || this.sent.length >= this.perMinute) return false;
    const inWindow = this.sent.reduce((n, x) => n + x.bytes, 0);
    return this.sent.length === 0 || inWindow + bytes <= this.bytesPerMinute;
  }

  take(bytes: number, now = Date.now()): void {
    this.refill(now);
    this.tokens -= 1;
    this.sent.push({ at: now, bytes });
  }

  /** Add `bytes` to the latest request's size (its body, known only after the claim). */
  charge(bytes: number): void {
    const last = this.sent[this.sent.length - 1];
    if (last) last.bytes += bytes;
  }

  /** Nothing sent within the last minute: the pacer can be dropped. */
  idle(now = Date.now()): boolean {
    this.refill(now);
    return this.sent.length === 0 && this.tokens >= this.burst;
  }
}

/** Wire bytes of a Message besides its body (IDs, timestamp, keys): enough for pacing. */
const MESSAGE_OVERHEAD = 320;

export interface OutboxWorkerOptions {
  /** Attempts in flight at once (sending, or writing their outcome), all targets together (default 128). */
  concurrency?: number;
  /** Rows read per poll (default 64: every finished attempt polls again, so a large batch made draining a long queue quadratic). */
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
  /** Target key → attempts in flight to it. */
  private busy = new Map<string, number>();
  /** Target key → Date.now() before which its messages wait (after a retryable failure). */
  private blocked = new Map<string, number>();
  /** Bare address target → the node ID that answered there (so its live session is reused). */
  private learnt = new Map<string, string>();
  /** Target key → outgoing pacing. */
  private pacers = new Map<string, Pacer>();

  constructor(node: AtlasNode, log: Logger = node.log, opts: OutboxWorkerOptions = {}) {
    this.node = node;
    this.log = log;
    this.concurrency = Math.max(1, opts.concurrency ?? 128);
    this.batch = Math.max(1, opts.batch ?? 64);
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
  async stop(timeoutMs = SERVICE_STOP_MS): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.immediate) clearImmediate(this.immediate);
    this.immediate = undefined;
    await within(Promise.allSettled([this.polling ?? Promise.resolve(), ...this.inflight.values()]), timeoutMs);
  }

  /** Attempts in flight (diagnostics, `atlas status`). */
  get inFlight(): number {
    return this.inflight.size;
  }

  private schedule(ms: number): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (ms > 0) {
      this.timer = setTimeout(() => void this.poll(), ms);
      return;
    }
    // At once: the next turn, not a 1 ms timer (a freed window slot is refilled without delay).
    if (this.immediate) return;
    this.immediate = setImmediate(() => {
      this.immediate = undefined;
      void this.poll();
    });
  }

  private immediate: ReturnType<typeof setImmediate> | undefined;

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
    for (const [k, p] of this.pacers) if (!this.busy.has(k) && p.idle()) this.pacers.delete(k);
    const rows = await outbox.dueHeads(now, this.batch);
    const picked: { row: OutboxHead; key: string; pacer: Pacer }[] = [];
    const planned = new Map<string, number>(); // key → attempts in flight, counting those picked now
    for (const row of rows) {
      if (this.stopped) return;
      if (this.inflight.has(row.id)) continue;
      if (row.expires_at <= now) {
        await this.finish(row, {
          status: "expired",
          finished_at: now,
          detail: `not delivered within outbox.ttl (${row.expires_at - row.created_at} s)`,
        });
        continue;
      }
      if (this.inflight.size + picked.length >= this.concurrency) continue; // still expire the rest
      const key = this.keyOf(row.target);
      const n = planned.get(key) ?? this.busy.get(key) ?? 0;
      // A window only over a live session: while it is being dialled, one attempt (one dial).
      const window = this.node.liveSession(key) ? Math.max(1, this.node.config.outbox.window) : 1;
      if (n >= window) continue;
      const until = this.blocked.get(key);
      if (until !== undefined) {
        if (until > Date.now()) continue;
        this.blocked.delete(key);
      }
      // The body is read only once claimed: pace on the envelope now, charge the body after.
      const bytes = (row.topic?.length ?? 0) + MESSAGE_OVERHEAD;
      let pacer = this.pacers.get(key);
      if (pacer && !pacer.ready(bytes)) continue;
      if (!pacer) this.pacers.set(key, pacer = new Pacer(this.node.config.rate_limit.unknown));
      pacer.take(bytes);
      planned.set(key, n + 1);
      picked.push({ row, key, pacer });
    }
    if (picked.length === 0 || this.stopped) return;
    const claimed = await outbox.claim(picked.map((p) => p.row.id));
    for (const { row: head, key, pacer } of picked) {
      const row = claimed.get(head.id);
      if (!row || this.stopped) continue;
      pacer.charge(utf8Length(row.body));
      this.busy.set(key, (this.busy.get(key) ?? 0) + 1);
      // The target's window slot is free once the MessageAck is in: the outcome's commit (group
      // commit, an fsync) overlaps the next sends instead of delaying them.
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        const left = (this.busy.get(key) ?? 1) - 1;
        if (left > 0) this.busy.set(key, left);
        else this.busy.delete(key);
        if (!this.stopped) this.schedule(0); // the target's next message, without waiting a poll interval
      };
      const p = this.attempt(row, key, release)
        .catch((e) =>
          this.log.error("outbox: attempt failed unexpectedly", { msg: row.id, error: (e as Error).message })
        )
        .finally(() => {
          this.inflight.delete(row.id);
          release();
          if (!this.stopped) this.schedule(0);
        });
      this.inflight.set(row.id, p);
    }
  }

  private keyOf(target: string): string {
    return targetNodeId(target) ?? this.learnt.get(target) ?? target;
  }

  /** `acked`: called once the message is acknowledged, before its outcome is written. */
  private async attempt(row: OutboxRow, key: string, acked: () => void): Promise<void> {
    const cfg = this.node.config;
    const learnt = this.learnt.get(row.target);
    const dialTarget = learnt ? `${learnt}@${row.target}` : row.target;
    try {
      const { session, sends } = await this.deliver(row, dialTarget);
      this.blocked.delete(key);
      acked();
      const detail = [
        session.path === "relay" && session.relay ? `via ${session.relay}` : null,
        targetNodeId(row.target) ? null : `to ${session.nodeId}`,
      ].filter(Boolean).join(", ");
      this.log.info("outbox: message delivered", {
        msg: row.id,
        to: shortNodeId(session.nodeId),
        path: session.path,
        attempts: row.attempts + sends,
      });
      await this.finish(row, {
        status: "delivered",
        finished_at: unixNow(),
        attempts: row.attempts + sends,
        path: session.path,
        detail: detail || null,
      });
    } catch (e) {
      const why = (e as Error)?.message ?? String(e);
      if (isPermanentRefusal(e)) {
        this.log.warn("outbox: message refused, not retrying", {
          msg: row.id,
          target: shortTarget(row.target),
          error: why,
        });
        await this.finish(row, { status: "failed", finished_at: unixNow(), detail: why });
        return;
      }
      const now = unixNow();
      if (now >= row.expires_at) {
        await this.finish(row, {
          status: "expired",
          finished_at: now,
          attempts: row.attempts + 1,
          detail: `not delivered within outbox.ttl; last attempt: ${why}`,
        });
        return;
      }
      // backoff_initial doubling up to backoff_max (seconds), never past the expiry time; a rate
      // limit refusal waits at least RATE_LIMITED_RETRY_MIN_S.
      let delay = Math.min(cfg.outbox.backoff_max, cfg.outbox.backoff_initial * 2 ** Math.min(row.attempts, 30));
      if (isAtlasError(e, "ERR_RATE_LIMITED")) {
        delay = Math.max(delay, Math.min(RATE_LIMITED_RETRY_MIN_S, cfg.outbox.backoff_max));
      }
      this.blocked.set(key, Date.now() + delay * 1000);
      const next = Math.min(Math.ceil(now + delay), row.expires_at);
      this.log.info("outbox: delivery failed, will retry", {
        msg: row.id,
        target: shortTarget(row.target),
        attempts: row.attempts + 1,
        retry_in_s: delay,
        error: why,
      });
      await this.write(row, () => this.node.store.outbox.markAttempt(row.id, next));
    }
  }

  /**
   * Deliver `row` over dialPeer's session. A reused session that dies under the attempt (the
   * peer restarted: a stateless reset closed it, or it missed a liveness Pong) says nothing
   * about the peer now, so it is dialled afresh at once rather than after a backoff. `sends`:
   * how many times the message went out (a redial counts as an attempt in `deliveries`).
   */
  private async deliver(row: OutboxRow, dialTarget: string): Promise<{ session: Session; sends: number }> {
    const first = await dialPeer(this.node, dialTarget);
    try {
      return { session: await this.sendOn(row, first.session), sends: 1 };
    } catch (e) {
      if (!first.reused || first.session.isOpen || isPermanentRefusal(e)) throw e;
      this.log.info("outbox: the session died under a delivery, redialling", {
        msg: row.id,
        to: shortNodeId(first.session.nodeId),
        error: (e as Error).message,
      });
    }
    return { session: await this.sendOn(row, (await dialPeer(this.node, dialTarget)).session), sends: 2 };
  }

  private async sendOn(row: OutboxRow, session: Session): Promise<Session> {
    if (!targetNodeId(row.target)) this.learnt.set(row.target, session.nodeId);
    const msg = buildMessage(this.node, session.nodeId, row.body, {
      msgId: row.id,
      timestamp: row.created_at,
      topic: row.topic ?? undefined,
      replyTo: row.reply_to ?? undefined,
    });
    this.node.metrics.inc("atlas_messages_sent_total");
    await deliverOn(session, msg, this.node.config.transport.request_timeout * 1000);
    return session;
  }

  private async finish(row: Pick<OutboxRow, "id">, o: DeliveryOutcome): Promise<void> {
    await this.write(row, () => this.node.store.outbox.complete(row.id, o));
    // Counted once recorded (the outcome is group-committed a turn later): a scrape that sees
    // the count also sees the row gone from the outbox.
    this.node.metrics.inc("atlas_messages_finished_total", { outcome: o.status });
  }

  /** A store write, tried twice; on failure the row stays as it is (re-queued at next start). */
  private async write(row: Pick<OutboxRow, "id">, fn: () => Promise<unknown>): Promise<void> {
    for (let i = 0;; i++) {
      try {
        await fn();
        return;
      } catch (e) {
        if (i >= 1 || this.stopped) {
          this.log.error("outbox: could not record an outcome", { msg: row.id, error: (e as Error).message });
          return;
        }
        await sleep(OUTCOME_RETRY_MS);
      }
    }
  }
}
