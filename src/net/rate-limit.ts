/**
 * Per-peer inbound rate limiting and ban accounting (docs/protocol.md#trust-rate-limits-and-bans). Pure and in-memory; the caller
 * answers refusals with Error 4001, stores `banUntil` and disconnects the peer.
 *
 * Algorithm, per peer (O(1) amortised per check, no allocation on the accepted path):
 *  - per second: a token bucket (capacity = per_second, refilled at per_second tokens/s). A bucket
 *    allows a short burst but bounds the sustained rate, and needs only two numbers of state; a
 *    one-second window would either let 2× the rate through at a window edge (fixed window) or
 *    cost a timestamp per request for little gain.
 *  - per minute, and payload bytes per minute: one exact sliding 60 s window. Over a minute a
 *    bucket's burst allowance would be a whole minute's worth at once, and a fixed window lets
 *    2× through across its edge, so we remember each accepted request as (time, bytes) in a ring
 *    buffer with a running byte sum. Entries leave the ring as they age past 60 s. At most
 *    per_minute requests are ever accepted within 60 s, so the ring never needs more than
 *    per_minute slots: it starts small and grows on demand up to that bound.
 *  - violations: each refused request is one violation (and is not recorded in the windows);
 *    timestamps of violations within ban_window_secs are kept (fewer than ban_violations of them).
 *    The ban_violations-th violation within the window issues a ban (banUntil, Unix seconds) and
 *    clears the count.
 *
 * Peers live in a Map plus an intrusive doubly linked LRU list (bounded by maxPeers). When a
 * peer's last session ends, its state is kept `retainMs` longer so that reconnecting does not
 * reset it, then dropped by sweep() (run periodically by the caller, and lazily from check()).
 */
import type { Config } from "../config/defaults.ts";
import { RATE_STATE_RETAIN_MS, RATE_SWEEP_MS, RATE_WINDOW_MS } from "../config/durations.ts";
import type { TrustLevel } from "../wire/messages.ts";

export interface RateDecision {
  ok: boolean;
  /** when !ok: which limit */
  limit?: "per_second" | "per_minute" | "bytes_per_minute";
  /** violations in the current window, after this one */
  violations: number;
  /** set when this violation triggers a ban: Unix seconds until which the peer is banned */
  banUntil?: number;
}

export interface PeerRateLimiterOptions {
  /** Clock in milliseconds (default Date.now). */
  now?: () => number;
  /** LRU bound on tracked peers (default 10000). */
  maxPeers?: number;
  /** State is kept this long after the peer's last session ends (default RATE_STATE_RETAIN_MS). */
  retainMs?: number;
}

const INITIAL_SLOTS = 8;

class PeerState {
  prev: PeerState | null = null; // towards the most recently used
  next: PeerState | null = null; // towards the least recently used
  /** Unix ms after which this state is dropped; 0 = a session is live (or none ended yet). */
  dropAt = 0;
  // token bucket
  tokens: number;
  refilledAt: number;
  // sliding window ring: interleaved [time ms, bytes] per accepted request
  ring: Float64Array;
  slots: number;
  head = 0;
  count = 0;
  bytes = 0;
  // violation times (ms), oldest first; fewer than ban_violations entries
  violations: number[] = [];
  constructor(
    readonly id: string,
    tokens: number,
    now: number,
    slots: number,
  ) {
    this.tokens = tokens;
    this.refilledAt = now;
    this.slots = slots;
    this.ring = new Float64Array(slots * 2);
  }
  clear(tokens: number, now: number): void {
    this.tokens = tokens;
    this.refilledAt = now;
    this.head = 0;
    this.count = 0;
    this.bytes = 0;
    this.violations.length = 0;
    this.dropAt = 0;
  }
}

/** Accepted decisions carry no per-call data besides the violation count: share frozen ones. */
const OK_SHARED: readonly RateDecision[] = Array.from(
  { length: 64 },
  (_, v) => Object.freeze({ ok: true, violations: v }),
);

export class PeerRateLimiter {
  readonly #cfg: Config;
  readonly #now: () => number;
  readonly #maxPeers: number;
  readonly #retainMs: number;
  readonly #peers = new Map<string, PeerState>();
  /** Peers with a pending drop (dropAt > 0). */
  readonly #pending = new Set<PeerState>();
  #mru: PeerState | null = null;
  #lru: PeerState | null = null;
  #nextSweep = 0;

  constructor(cfg: Config, opts: PeerRateLimiterOptions = {}) {
    this.#cfg = cfg;
    this.#now = opts.now ?? Date.now;
    this.#maxPeers = Math.max(1, Math.floor(opts.maxPeers ?? 10_000));
    this.#retainMs = Math.max(0, opts.retainMs ?? RATE_STATE_RETAIN_MS);
  }

  /**
   * Account one inbound request of `bytes` payload from `nodeId` at trust `tier`. Returned
   * decisions are read-only (accepted ones are shared, frozen objects).
   */
  check(nodeId: string, tier: TrustLevel, bytes: number): RateDecision {
    const now = this.#now();
    const lim = this.#cfg.rate_limit[tier] ?? this.#cfg.rate_limit.unknown;
    const perSecond = lim.per_second;
    const perMinute = lim.per_minute;
    if (!(bytes > 0)) bytes = 0;

    if (this.#pending.size > 0 && now >= this.#nextSweep) this.sweep();
    let s = this.#peers.get(nodeId);
    if (s === undefined) {
      s = this.#insert(nodeId, perSecond, perMinute, now);
    } else {
      if (s.dropAt !== 0 && now >= s.dropAt) {
        // Retention ran out but no sweep has run yet: the peer starts afresh.
        this.#pending.delete(s);
        s.clear(perSecond, now);
      }
      this.#touch(s);
    }

    // Refill the token bucket (capacity may differ from last time if the tier changed).
    const elapsed = now - s.refilledAt;
    if (elapsed > 0) {
      const t = s.tokens + (elapsed * perSecond) / 1000;
      s.tokens = t < perSecond ? t : perSecond;
      s.refilledAt = now;
    } else if (elapsed < 0) {
      s.refilledAt = now; // clock stepped back: no refill, restart from here
    }
    if (s.tokens > perSecond) s.tokens = perSecond;

    // Slide the window: drop accepted requests 60 s old or more.
    const ring = s.ring;
    const cutoff = now - RATE_WINDOW_MS;
    while (s.count > 0 && ring[s.head * 2]! <= cutoff) {
      s.bytes -= ring[s.head * 2 + 1]!;
      if (++s.head === s.slots) s.head = 0;
      s.count--;
    }
    if (s.count === 0) s.bytes = 0; // no drift from float subtraction

    // Forget violations that left the ban window.
    const v = s.violations;
    if (v.length > 0) {
      const vCutoff = now - this.#cfg.security.ban_window_secs * 1000;
      while (v.length > 0 && v[0]! <= vCutoff) v.shift();
    }

    let limit: RateDecision["limit"];
    if (s.tokens < 1) limit = "per_second";
    else if (s.count >= perMinute) limit = "per_minute";
    else if (s.bytes + bytes > lim.bytes_per_minute) limit = "bytes_per_minute";
    else {
      s.tokens -= 1;
      if (s.count === s.slots) this.#grow(s, perMinute);
      let tail = s.head + s.count;
      if (tail >= s.slots) tail -= s.slots;
      s.ring[tail * 2] = now;
      s.ring[tail * 2 + 1] = bytes;
      s.count++;
      s.bytes += bytes;
      return OK_SHARED[v.length] ?? { ok: true, violations: v.length };
    }

    // Refused: not recorded in the windows, counts as one violation.
    const sec = this.#cfg.security;
    v.push(now);
    const violations = v.length;
    if (violations >= sec.ban_violations) {
      v.length = 0;
      return { ok: false, limit, violations, banUntil: Math.ceil(now / 1000) + sec.ban_duration_secs };
    }
    return { ok: false, limit, violations };
  }

  /** The peer's sessions all ended: keep its state `retainMs` more (so reconnecting does not reset it), then drop it. */
  sessionEnded(nodeId: string): void {
    const s = this.#peers.get(nodeId);
    if (s === undefined) return;
    s.dropAt = this.#now() + this.#retainMs;
    if (s.dropAt === 0) s.dropAt = 1; // 0 means "no pending drop"
    this.#pending.add(s);
  }

  /** A session with the peer started: cancels a pending drop. */
  sessionStarted(nodeId: string): void {
    const s = this.#peers.get(nodeId);
    if (s === undefined) return;
    if (s.dropAt !== 0 && this.#now() >= s.dropAt) {
      this.#remove(s); // retention already ran out: the state is gone
      return;
    }
    s.dropAt = 0;
    this.#pending.delete(s);
    this.#touch(s);
  }

  /** Forget a peer (e.g. `atlas net unban`). */
  reset(nodeId: string): void {
    const s = this.#peers.get(nodeId);
    if (s !== undefined) this.#remove(s);
  }

  /** Tracked peers. */
  get size(): number {
    return this.#peers.size;
  }

  /** Drop state of peers whose retention expired (call periodically; also done lazily in check). */
  sweep(): void {
    const now = this.#now();
    this.#nextSweep = now + RATE_SWEEP_MS;
    for (const s of this.#pending) if (now >= s.dropAt) this.#remove(s);
  }

  #insert(id: string, perSecond: number, perMinute: number, now: number): PeerState {
    if (this.#peers.size >= this.#maxPeers && this.#lru !== null) {
      // Evict the least recently used peer (its ring is left to the GC; sizes differ per tier).
      this.#remove(this.#lru);
    }
    const s = new PeerState(id, perSecond, now, Math.max(1, Math.min(INITIAL_SLOTS, perMinute)));
    this.#peers.set(id, s);
    s.next = this.#mru;
    if (this.#mru !== null) this.#mru.prev = s;
    this.#mru = s;
    if (this.#lru === null) this.#lru = s;
    return s;
  }

  /** Move to the most recently used end. */
  #touch(s: PeerState): void {
    if (this.#mru === s) return;
    // unlink (s has a prev, since it is not the MRU)
    s.prev!.next = s.next;
    if (s.next !== null) s.next.prev = s.prev;
    else this.#lru = s.prev;
    s.prev = null;
    s.next = this.#mru;
    this.#mru!.prev = s;
    this.#mru = s;
  }

  #remove(s: PeerState): void {
    if (this.#peers.get(s.id) !== s) return;
    this.#peers.delete(s.id);
    this.#pending.delete(s);
    if (s.prev !== null) s.prev.next = s.next;
    else this.#mru = s.next;
    if (s.next !== null) s.next.prev = s.prev;
    else this.#lru = s.prev;
    s.prev = s.next = null;
  }

  /** The ring is full and one more request is accepted (count < perMinute): enlarge it. */
  #grow(s: PeerState, perMinute: number): void {
    const slots = Math.max(s.slots + 1, Math.min(s.slots * 2, perMinute));
    const ring = new Float64Array(slots * 2);
    // unroll: oldest first
    const first = (s.slots - s.head) * 2;
    ring.set(s.ring.subarray(s.head * 2), 0);
    ring.set(s.ring.subarray(0, s.head * 2), first);
    s.ring = ring;
    s.slots = slots;
    s.head = 0;
  }
}
