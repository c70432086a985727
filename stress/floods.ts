/**
 * Floods against a daemon whose limits are at their defaults (but for the two noted below), a good
 * peer sending throughout:
 * - handshakes from one address (100, 150 at full scale — the attacker's own endpoint holds 200
 *   connections at most) beyond `security.handshakes_per_ip_per_minute` (30): the rest are
 *   refused silently; silent connections from four addresses beyond `security.handshake_limit`
 *   (50): the excess refused, the held ones closed with 1003, then a newcomer gets in;
 * - requests from authenticated throwaway identities past the rate limits: Error 4001, a ban
 *   (Disconnect DISCONNECT_BANNED), the banned identity's next handshake refused with 4001;
 * - Pings and Error frames on the control stream (not rate limited): every Ping gets its Pong.
 * Attackers use their own loopback addresses (127.0.0.2…), so the per-address limits they exhaust
 * are not the good peer's (127.0.0.1).
 *
 * Victim config: `security.handshake_timeout` 3 s (held connections end sooner), and the unknown
 * tier's limits at 10 requests a second and 600 a minute, above the good peer's 5 a second
 * (the default 60 a minute would stop the good peer itself within the first minute).
 */
import { fullScale } from "./budget.ts";
import { underAttack } from "./attack.ts";
import { type Limits, pendingFlood, perAddressFlood } from "./floods-handshake.ts";
import { errorFrameFlood, pingFlood, requestFlood } from "./floods-session.ts";
import { newRow, type Phase, type PhaseContext, type PhaseRow } from "./harness.ts";
import type { Victim } from "./victim.ts";

const LIMITS: Limits = { perIpPerMinute: 30, handshakeLimit: 50, handshakeTimeoutS: 3 };
const CONFIG = `[security]\nhandshake_timeout = ${LIMITS.handshakeTimeoutS}\n` +
  "[rate_limit.unknown]\nper_second = 10\nper_minute = 600\n";
/** RSS after ≤ before + this (a few hundred connections, 10^5 control frames). */
const RSS_BOUND_MIB = 64;

export const floodsPhase: Phase = {
  name: "floods",
  weight: 2,
  run(ctx) {
    const row = newRow("floods (handshakes per address and pending, requests past the limits, control frames)");
    return underAttack(row, { config: CONFIG, rssBoundMiB: RSS_BOUND_MIB }, (v) => floods(ctx, row, v));
  },
};

async function floods(ctx: PhaseContext, row: PhaseRow, v: Victim): Promise<void> {
  const full = fullScale(ctx);
  const started = Date.now();
  const step = async (what: string, f: () => Promise<void>) => {
    const t0 = Date.now();
    await f();
    ctx.log(`${what}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  };
  await step("per-address flood", () => perAddressFlood(row, v, "127.0.0.2", full ? 150 : 100, LIMITS));
  const hosts = ["127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"];
  await step("pending flood", () => pendingFlood(row, v, hosts, 15, "127.0.0.7", LIMITS));
  const identities = full ? 10 : 2;
  await step("request floods", async () => {
    for (let i = 0; i < identities; i++) await requestFlood(row, v, 500);
  });
  await step("ping flood", () => pingFlood(row, v, full ? 200_000 : 20_000));
  await step("Error-frame flood", () => errorFrameFlood(row, v, full ? 50_000 : 5_000));
  row.notes.unshift(`${row.attempts} hostile inputs in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}
