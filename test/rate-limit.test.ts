import { test } from "node:test";
import assert from "node:assert/strict";
import { defaultConfig } from "../src/config/defaults.ts";
import { PeerRateLimiter, type RateDecision } from "../src/net/rate-limit.ts";

const MiB = 1024 * 1024;
const T0 = 1_700_000_000_000; // a whole second, so Unix seconds are T0 / 1000

function setup(opts: { maxPeers?: number; retainMs?: number } = {}) {
  const clock = { t: T0 };
  const rl = new PeerRateLimiter(defaultConfig(), { now: () => clock.t, ...opts });
  return { clock, rl };
}

function refused(d: RateDecision, limit: RateDecision["limit"]): void {
  assert.equal(d.ok, false, `expected a refusal (${limit})`);
  assert.equal(d.limit, limit);
}

test("a burst of 5 requests is served and the 6th in the same second refused", () => {
  const { rl } = setup();
  for (let i = 0; i < 5; i++) assert.equal(rl.check("a", "unknown", 100).ok, true, `request ${i + 1}`);
  const d = rl.check("a", "unknown", 100);
  refused(d, "per_second");
  assert.equal(d.violations, 1);
  assert.equal(d.banUntil, undefined);
});

test("tokens refill at per_second each second", () => {
  const { clock, rl } = setup();
  for (let i = 0; i < 5; i++) assert.equal(rl.check("a", "unknown", 0).ok, true);
  clock.t += 199;
  refused(rl.check("a", "unknown", 0), "per_second");
  clock.t += 1; // 200 ms: one token
  assert.equal(rl.check("a", "unknown", 0).ok, true);
  refused(rl.check("a", "unknown", 0), "per_second");
  clock.t += 10_000; // the bucket caps at its capacity
  for (let i = 0; i < 5; i++) assert.equal(rl.check("a", "unknown", 0).ok, true);
  refused(rl.check("a", "unknown", 0), "per_second");
});

test("the per-minute limit counts a sliding 60 s window", () => {
  const { clock, rl } = setup();
  // 60 requests at 1 s intervals over t = 0 … 59 s (well under 5/s)
  for (let i = 0; i < 60; i++) {
    clock.t = T0 + i * 1000;
    assert.equal(rl.check("a", "unknown", 10).ok, true, `request ${i + 1}`);
  }
  clock.t = T0 + 59_500;
  refused(rl.check("a", "unknown", 10), "per_minute"); // the 61st, within 59.5 s
  clock.t = T0 + 59_999;
  refused(rl.check("a", "unknown", 10), "per_minute");
  clock.t = T0 + 60_000; // the first request (t = 0) slid out
  assert.equal(rl.check("a", "unknown", 10).ok, true);
  refused(rl.check("a", "unknown", 10), "per_minute");
  clock.t = T0 + 61_000; // the second slid out
  assert.equal(rl.check("a", "unknown", 10).ok, true);
});

test("refused requests are not counted in the windows", () => {
  const { clock, rl } = setup();
  // 20 attempts each second for 12 s: 5 accepted, 15 refused per second
  let accepted = 0;
  for (let s = 0; s < 12; s++) {
    clock.t = T0 + s * 1000;
    for (let i = 0; i < 20; i++) if (rl.check("a", "unknown", 0).ok) accepted++;
  }
  assert.equal(accepted, 60);
  clock.t = T0 + 12_000;
  refused(rl.check("a", "unknown", 0), "per_minute");
});

test("a request beyond 10 MiB in a minute is refused", () => {
  const { clock, rl } = setup();
  for (let i = 0; i < 10; i++) {
    clock.t = T0 + i * 1000;
    assert.equal(rl.check("a", "unknown", MiB).ok, true, `MiB ${i + 1}`);
  }
  clock.t = T0 + 10_000;
  refused(rl.check("a", "unknown", 1), "bytes_per_minute");
  assert.equal(rl.check("a", "unknown", 0).ok, true, "an empty request still fits");
  clock.t = T0 + 60_000; // the first MiB slid out
  assert.equal(rl.check("a", "unknown", MiB).ok, true);
  refused(rl.check("a", "unknown", 1), "bytes_per_minute");
  // one request larger than the whole budget is never accepted
  refused(rl.check("b", "unknown", 10 * MiB + 1), "bytes_per_minute");
  assert.equal(rl.check("c", "unknown", 10 * MiB).ok, true);
});

test("the verified tier gets 20 per second, 300 per minute and 50 MiB per minute", () => {
  const { clock, rl } = setup();
  for (let i = 0; i < 20; i++) assert.equal(rl.check("v", "verified", 0).ok, true, `request ${i + 1}`);
  refused(rl.check("v", "verified", 0), "per_second");
  rl.reset("v");
  let accepted = 0;
  for (let s = 0; s < 15; s++) {
    clock.t = T0 + 1000 + s * 1000;
    for (let i = 0; i < 20; i++) if (rl.check("v", "verified", 0).ok) accepted++;
  }
  assert.equal(accepted, 300);
  clock.t += 1000;
  refused(rl.check("v", "verified", 0), "per_minute");
  // bytes: 50 MiB
  for (let i = 0; i < 50; i++) {
    clock.t += 100;
    assert.equal(rl.check("w", "verified", MiB).ok, true, `MiB ${i + 1}`);
  }
  clock.t += 1000;
  refused(rl.check("w", "verified", 1), "bytes_per_minute");
  // the other tiers have the unknown tier's limits
  for (const tier of ["bootstrap", "relay"] as const) {
    for (let i = 0; i < 5; i++) assert.equal(rl.check(tier, tier, 0).ok, true);
    refused(rl.check(tier, tier, 0), "per_second");
  }
});

test("each tier's limits come from the config", () => {
  const cfg = defaultConfig();
  cfg.rate_limit.relay.per_second = 2;
  const rl = new PeerRateLimiter(cfg, { now: () => T0 });
  assert.equal(rl.check("r", "relay", 0).ok, true);
  assert.equal(rl.check("r", "relay", 0).ok, true);
  refused(rl.check("r", "relay", 0), "per_second");
});

test("3 violations within 300 s ban the peer for 600 s and the count starts again after", () => {
  const { clock, rl } = setup();
  for (let i = 0; i < 5; i++) rl.check("a", "unknown", 0);
  const d1 = rl.check("a", "unknown", 0);
  assert.deepEqual(d1, { ok: false, limit: "per_second", violations: 1 });
  clock.t += 100_000;
  for (let i = 0; i < 5; i++) assert.equal(rl.check("a", "unknown", 0).ok, true);
  assert.deepEqual(rl.check("a", "unknown", 0), { ok: false, limit: "per_second", violations: 2 });
  clock.t += 100_000; // the third within 300 s of the first
  for (let i = 0; i < 5; i++) assert.deepEqual(rl.check("a", "unknown", 0), { ok: true, violations: 2 });
  const d3 = rl.check("a", "unknown", 0);
  assert.deepEqual(d3, { ok: false, limit: "per_second", violations: 3, banUntil: clock.t / 1000 + 600 });
  // accepted decisions report the violations in the window (0 after the reset)
  clock.t += 1000;
  assert.deepEqual(rl.check("a", "unknown", 0), { ok: true, violations: 0 });
  for (let i = 0; i < 4; i++) rl.check("a", "unknown", 0);
  const d4 = rl.check("a", "unknown", 0);
  refused(d4, "per_second");
  assert.equal(d4.violations, 1, "the count restarted");
  assert.equal(d4.banUntil, undefined);
  clock.t += 1000;
  assert.deepEqual(rl.check("a", "unknown", 0), { ok: true, violations: 1 });
});

test("violations older than ban_window_secs do not count", () => {
  const { clock, rl } = setup();
  for (let i = 0; i < 5; i++) rl.check("a", "unknown", 0);
  assert.equal(rl.check("a", "unknown", 0).violations, 1);
  assert.equal(rl.check("a", "unknown", 0).violations, 2);
  clock.t += 301_000;
  for (let i = 0; i < 5; i++) assert.deepEqual(rl.check("a", "unknown", 0), { ok: true, violations: 0 });
  const d = rl.check("a", "unknown", 0);
  refused(d, "per_second");
  assert.equal(d.violations, 1);
  assert.equal(d.banUntil, undefined);
  // sliding, not fixed: violations at 0, 200, 400 s never have 3 within 300 s
  const s2 = setup();
  for (const at of [0, 200_000, 400_000, 600_000]) {
    s2.clock.t = T0 + at;
    for (let i = 0; i < 5; i++) s2.rl.check("b", "unknown", 0);
    const v = s2.rl.check("b", "unknown", 0);
    refused(v, "per_second");
    assert.equal(v.banUntil, undefined, `no ban at ${at / 1000} s`);
    assert.equal(v.violations, at === 0 ? 1 : 2);
  }
});

test("a well-behaved peer is unaffected by a flooding one", () => {
  const { clock, rl } = setup();
  let bans = 0;
  for (let s = 0; s < 120; s++) {
    clock.t = T0 + s * 1000;
    for (let i = 0; i < 100; i++) if (rl.check("flood", "unknown", 64 * 1024).banUntil !== undefined) bans++;
    assert.deepEqual(rl.check("good", "unknown", 1000), { ok: true, violations: 0 }, `good peer at ${s} s`);
  }
  assert.ok(bans > 0);
});

test("a peer's counts outlive its session for retainMs and are then dropped", () => {
  const { clock, rl } = setup();
  for (let i = 0; i < 30; i++) {
    clock.t = T0 + i * 1000;
    rl.check("a", "unknown", 0);
  }
  rl.sessionEnded("a");
  clock.t += 5 * 60_000; // reconnect within 10 minutes: counters kept
  rl.sessionStarted("a");
  for (let i = 0; i < 5; i++) rl.check("a", "unknown", 0);
  const d = rl.check("a", "unknown", 0);
  refused(d, "per_second");
  rl.sessionEnded("a");
  clock.t += 4 * 60_000; // the violation is still remembered 4 minutes later (within ban_window_secs)
  rl.sweep();
  assert.equal(rl.size, 1);
  for (let i = 0; i < 5; i++) rl.check("a", "unknown", 0);
  assert.equal(rl.check("a", "unknown", 0).violations, 2);

  // dropped 10 minutes after the session ended: sweep() …
  const t2 = clock.t;
  rl.sessionEnded("a");
  clock.t = t2 + 600_000 - 1;
  rl.sweep();
  assert.equal(rl.size, 1);
  clock.t = t2 + 600_000;
  rl.sweep();
  assert.equal(rl.size, 0);
  // … a reconnect starts afresh
  rl.sessionStarted("a");
  for (let i = 0; i < 5; i++) rl.check("a", "unknown", 0);
  assert.equal(rl.check("a", "unknown", 0).violations, 1);

  // … or lazily, in check()
  rl.sessionEnded("a");
  rl.check("b", "unknown", 0);
  clock.t += 600_000;
  rl.check("b", "unknown", 0);
  assert.equal(rl.size, 1, "check() swept the expired peer");
  // sessionStarted cancels a pending drop
  rl.sessionEnded("b");
  clock.t += 300_000;
  rl.sessionStarted("b");
  clock.t += 3_600_000;
  rl.sweep();
  assert.equal(rl.size, 1);
});

test("reset forgets a peer's counts", () => {
  const { rl } = setup();
  for (let i = 0; i < 7; i++) rl.check("a", "unknown", 0);
  assert.equal(rl.size, 1);
  rl.reset("a");
  assert.equal(rl.size, 0);
  assert.deepEqual(rl.check("a", "unknown", 0), { ok: true, violations: 0 });
  rl.reset("nobody");
  rl.sessionEnded("nobody");
  rl.sessionStarted("nobody");
  assert.equal(rl.size, 1);
});

test("at most maxPeers peers are tracked, the least recently seen dropped first", () => {
  const { clock, rl } = setup({ maxPeers: 100 });
  for (let i = 0; i < 5; i++) rl.check("hot", "unknown", 0);
  for (let i = 0; i < 1000; i++) {
    rl.check(`peer-${i}`, "unknown", 0); // (the clock stands still: "hot" gets no new tokens)
    if (i % 10 === 0) rl.sessionStarted("hot"); // keeps "hot" recently used
    assert.ok(rl.size <= 100);
  }
  assert.equal(rl.size, 100);
  // the recently used peer kept its state, the least recently used ones were evicted
  refused(rl.check("hot", "unknown", 0), "per_second");
  rl.check("peer-0", "unknown", 0);
  assert.equal(rl.size, 100);
  for (let i = 0; i < 5; i++) assert.equal(rl.check("peer-1", "unknown", 0).ok, true); // fresh bucket
  // evicting peers with pending drops keeps the bookkeeping consistent
  for (let i = 0; i < 300; i++) {
    rl.check(`x-${i}`, "unknown", 0);
    rl.sessionEnded(`x-${i}`);
  }
  assert.equal(rl.size, 100);
  clock.t += 600_000;
  rl.sweep();
  assert.equal(rl.size, 0); // every tracked peer was an ended x-*
});

test("a check over 1000 tracked peers stays under 2 \u00b5s (a coarse guard against a quadratic lookup)", (t) => {
  const { clock, rl } = setup();
  const ids = Array.from({ length: 1000 }, (_, i) => `atlas_${i.toString(16).padStart(52, "0")}`);
  const tiers = ["unknown", "verified", "bootstrap", "relay"] as const;
  const N = 1_000_000;
  let ok = 0;
  // warm-up (JIT), then measure
  for (let i = 0; i < 100_000; i++) rl.check(ids[i % 1000]!, tiers[i & 3]!, 512);
  const start = process.hrtime.bigint();
  for (let i = 0; i < N; i++) {
    if ((i & 255) === 0) clock.t += 100; // ~1 request per peer per ~400 ms on average: mostly accepted
    if (rl.check(ids[i % 1000]!, tiers[(i >> 10) & 3]!, 512).ok) ok++;
  }
  const ns = Number(process.hrtime.bigint() - start) / N;
  t.diagnostic(`${ns.toFixed(0)} ns/check (${N} checks, 1000 peers, ${((ok / N) * 100).toFixed(1)}% accepted)`);
  assert.equal(rl.size, 1000);
  assert.ok(ns < 2000, `${ns} ns/check`);
});
