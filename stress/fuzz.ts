/**
 * Issue 16's frame fuzzer as a phase: mutants of valid frames (stress/fuzz-mutate.ts) against a
 * real daemon on three surfaces, one after the other while a good peer keeps sending —
 *  1. before the handshake: the first frame on stream 0 of a fresh connection (one each);
 *  2. the control stream after the handshake: valid mutants in batches on one stream, and now and
 *     then an arbitrary one (which, when undecodable, ends the session as docs/protocol.md#messages says);
 *  3. request streams of authenticated sessions: arbitrary mutants, one per stream, many streams
 *     in flight, a new throwaway identity every 50 000.
 * Every answer is judged against the protocol (docs/protocol.md, stress/fuzz-oracle.ts); one it forbids fails the phase.
 *
 * The victim's rate limits are lifted (NO_RATE_LIMITS), and so are its handshake limits: one
 * connection per pre-handshake mutant from 127.0.0.1 would pass `security.handshakes_per_ip_per_minute`
 * (30) within a second, so this phase sets it to 10^9 and `security.handshake_limit` to 1000.
 *
 *   STRESS_SEED=<n>  replay the same mutation choices (the seed in use is printed)
 */
import { count, expect, mib, newRow, type Phase, type PhaseContext, type PhaseRow, rss } from "./harness.ts";
import { underAttack } from "./attack.ts";
import { fuzzControl } from "./fuzz-control.ts";
import { fuzzPreHandshake } from "./fuzz-prehandshake.ts";
import { fuzzRequests } from "./fuzz-requests.ts";
import { Tally } from "./fuzz-tally.ts";
import { NO_RATE_LIMITS, type Victim } from "./victim.ts";

const HANDSHAKE_LIMITS_LIFTED = "[security]\nhandshake_limit = 1000\nhandshakes_per_ip_per_minute = 1000000000\n";
/**
 * RSS after the campaign ≤ before + this. Connection churn alone lifts an idle daemon by ~100 MiB
 * (10 000 pre-handshake connections: 79 → 186 MiB by the 2 000th, flat after, kept once idle);
 * the 180 s campaign (1.7 M frames) stayed between 188 and 224 MiB after its first minute.
 */
const RSS_BOUND_MIB = 160;
/** Share of the budget of each stage, in order. */
const SHARES = { pre: 0.1, control: 0.35, requests: 0.55 };
/** A stage stops at this many frames even if time remains (the long run's whole target is 10^6). */
const MAX_FRAMES_PER_STAGE = 2_000_000;
/** Time kept at the end for the closing checks (status, good peer, RSS). */
const CLOSING_MS = 1500;
/** security.max_clock_drift_secs at its default (the victim's config does not change it). */
const MAX_DRIFT_S = 300;

export const fuzzPhase: Phase = {
  name: "fuzz",
  weight: 3,
  run(ctx) {
    const row = newRow("fuzz (mutated frames: before the handshake, control stream, request streams)");
    const config = NO_RATE_LIMITS + HANDSHAKE_LIMITS_LIFTED;
    return underAttack(row, { config, rssBoundMiB: RSS_BOUND_MIB }, (v) => campaign(ctx, row, v));
  },
};

async function campaign(ctx: PhaseContext, row: PhaseRow, v: Victim): Promise<void> {
  const seed = Number(process.env.STRESS_SEED ?? Date.now() % 1_000_000);
  const started = Date.now();
  const span = Math.max(3000, ctx.budgetMs - CLOSING_MS);
  const until = (share: number) => Date.now() + span * share;
  const t = {
    pre: new Tally("before handshake"),
    valid: new Tally("control stream, valid mutants"),
    arbitrary: new Tally("control stream, arbitrary mutants"),
    req: new Tally("request streams"),
  };
  const all = Object.values(t);
  const common = { addr: v.addr, victim: v.nodeId, maxFrames: MAX_FRAMES_PER_STAGE };
  ctx.log(`seed ${seed} (STRESS_SEED=${seed} replays it), ${(span / 1000).toFixed(1)} s`);
  const ticker = setInterval(() => ctx.log(`${progress(all, started)}; victim RSS ${mib(rss(v.pid))}`), 10_000);
  // Most mutants make src/wire throw in this process too (the judge decodes each one), and a stack
  // trace per throw was this process's largest single cost. Restored below.
  const stackLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    const p = await timed(
      t.pre,
      () =>
        fuzzPreHandshake(
          { ...common, concurrency: 8, maxDriftS: MAX_DRIFT_S, deadline: until(SHARES.pre), seed },
          t.pre,
        ),
    );
    const c = await timed(
      t.valid,
      () =>
        fuzzControl({ ...common, lanes: 4, arbitraryLanes: 2, deadline: until(SHARES.control), seed: seed + 100 }, t),
    );
    t.arbitrary.secs = t.valid.secs;
    const r = await timed(t.req, () =>
      fuzzRequests({
        ...common,
        lanes: 4,
        inflight: 40,
        perSession: 50_000,
        deadline: started + span,
        seed: seed + 200,
      }, t.req));
    const secs = (Date.now() - started) / 1000;
    const total = all.reduce((n, x) => n + x.sent, 0);
    row.attempts = total;
    row.notes.push(
      `${total} frames in ${secs.toFixed(1)} s = ${Math.round(total / secs)} frames/s (seed ${seed})`,
      `sessions: ${c.sessions} on the control stream, ${r.sessions} for request streams (${r.lost} ended under ` +
        `them); connect failures: ${p.connectFailures + c.connectFailures + r.connectFailures}`,
    );
    for (const x of all) report(row, x);
    expect(row, r.lost === 0, `no session ended by a request-stream mutant (${r.lost})`);
  } finally {
    clearInterval(ticker);
    Error.stackTraceLimit = stackLimit;
  }
}

/** Run one stage, recording its duration on its tally (for its rate). */
async function timed<T>(t: Tally, stage: () => Promise<T>): Promise<T> {
  const t0 = Date.now();
  try {
    return await stage();
  } finally {
    t.secs = (Date.now() - t0) / 1000;
  }
}

const PREFIX: Record<string, string> = {
  "before handshake": "pre",
  "control stream, valid mutants": "ctl",
  "control stream, arbitrary mutants": "ctl*",
  "request streams": "req",
};

/** A stage's figures into the row: outcomes prefixed by surface, rate, violations asserted. */
function report(row: PhaseRow, t: Tally): void {
  for (const [label, n] of [...t.outcomes].sort((a, b) => b[1] - a[1])) count(row, `${PREFIX[t.name]} ${label}`, n);
  const rate = t.secs > 0 ? Math.round(t.sent / t.secs) : 0;
  row.notes.push(`${t.name}: ${t.sent} frames in ${t.secs.toFixed(1)} s, ${rate}/s, ${t.violations} not allowed`);
  for (const [why, n] of t.reasons) row.notes.push(`  ${t.name}: ${n} × ${why}`);
  row.notes.push(...t.examples.map((e) => `  e.g. ${e}`));
  expect(row, t.violations === 0, `${t.name}: every answer allowed by the protocol (${t.violations} not)`);
}

function progress(all: Tally[], started: number): string {
  const secs = (Date.now() - started) / 1000;
  const total = all.reduce((n, x) => n + x.sent, 0);
  return `${secs.toFixed(0)} s: ${total} frames (${Math.round(total / secs)}/s): ` +
    all.map((x) => `${PREFIX[x.name]} ${x.sent}`).join(", ");
}
