/**
 * Relay abuse (issue 16 defect 2; docs/protocol.md#relay, 1.2), against a real `atlas relay` process and a real
 * daemon registered with it as the target:
 * - spoofed IDs: RelayConnect / RelayAnnounce naming another node than the connection's → RelayError 3,
 *   and the target's registration is not taken over;
 * - a sybil fill: 100 identities on 127.0.0.1, four RelayConnects each to the one target → that
 *   address holds at most its share of the target (half of `relay_pipes_per_target`), every other
 *   request RelayError 7, while a dialler on 127.0.0.2 pairs and pings;
 * - unused pipes (no inner packet within `relay_pairing_timeout`) torn down, their slots freed;
 * - per-target exhaustion: two more addresses hold the target's 8 slots → the ninth is RelayError 8
 *   (target busy), the target stays registered, and pairs again once those unused pipes are gone.
 * The relay's per-address handshake limit is raised (1000 a minute): 100 identities from one
 * address must reach the pipe limits under test.
 */
import { identityFromSeed } from "../src/identity/identity.ts";
import { generateSeed } from "../src/identity/keys.ts";
import type { AtlasNode } from "../src/net/node.ts";
import type { Session } from "../src/net/session.ts";
import { dialViaRelay } from "../src/relay/dial.ts";
import { formatAddr } from "../src/transport/addr.ts";
import { RelayErrorCode } from "../src/wire/messages.ts";
import { Crowd, pool } from "./crowd.ts";
import { askLabel, errorLabel } from "./exchange.ts";
import { count, expect, mib, newRow, type Phase, type PhaseContext, type PhaseRow, rss } from "./harness.ts";
import { startVictim, statusOf, type Victim } from "./victim.ts";
import { until } from "./wait.ts";

const PAIRING_TIMEOUT_S = 4;
const SYBILS = 100;
/** RelayConnects per sybil: the per-source limit (`relay_pipes_per_source`), so only the address limits bite. */
const ASKS_PER_SYBIL = 4;
const PIPES_PER_TARGET = 8; // transport.relay_pipes_per_target, the default
const RELAY_CONFIG = "[security]\nhandshakes_per_ip_per_minute = 1000\n" +
  `[transport]\nrelay_pairing_timeout = ${PAIRING_TIMEOUT_S}\n`;
const READY = "RelayReady";
const relayError = (code: number) => `RelayError ${code}`;

interface Scene {
  row: PhaseRow;
  ctx: PhaseContext;
  relay: Victim;
  relayText: string;
  targetId: string;
  crowd: Crowd;
}

export const relayAbusePhase: Phase = {
  name: "relay-abuse",
  async run(ctx) {
    const row = newRow("relay-abuse (spoofed IDs, 100 sybils on one address, per-target exhaustion)");
    const relay = await startVictim(RELAY_CONFIG, { cmd: ["relay"] });
    const relayText = `${relay.nodeId}@${formatAddr(relay.addr)}`;
    let target: Victim | null = null;
    const crowd = await Crowd.open();
    try {
      target = await startVictim("[transport]\nrelay_announce_interval = 1\n", { args: ["--relay", relayText] });
      const s: Scene = { row, ctx, relay, relayText, targetId: target.nodeId, crowd };
      const registered = await until(() => relayStats(s), (r) => r.registered === 1, 15_000);
      expect(row, registered.held, "the target daemon registered with the relay");
      row.rssBefore = rss(relay.pid);
      await spoofing(s);
      await sybilFill(s);
      await exhaustTarget(s);
      const end = await relayStats(s);
      row.rssAfter = rss(relay.pid);
      expect(row, relay.daemon.proc.exitCode === null, "the relay process is still running");
      expect(row, end.registered === 1, `the target is still registered (${end.registered})`);
      row.notes.push(
        `relay RSS ${mib(row.rssBefore)} → ${mib(row.rssAfter)}; refused by code ${JSON.stringify(end.refused)}, ` +
          `${end.pipes_closed_unused} unused pipes closed, ${end.forwarded_packets} packets forwarded`,
      );
      return row;
    } finally {
      await crowd.close();
      await target?.stop();
      await relay.stop();
    }
  },
};

async function relayStats(s: Scene) {
  return (await statusOf(s.relay.home)).relay_server!;
}

function sessionWithRelay(s: Scene, n: AtlasNode): Promise<Session> {
  return n.connectTo(s.relay.addr, { expectedNodeId: s.relay.nodeId });
}

/** Five identities each claim to be the target, or a stranger, in RelayConnect and RelayAnnounce. */
async function spoofing(s: Scene): Promise<void> {
  const labels: string[] = [];
  const ts = () => Math.floor(Date.now() / 1000);
  for (let i = 0; i < 5; i++) {
    const session = await sessionWithRelay(s, await s.crowd.add({ name: "spoofer" }));
    const stranger = identityFromSeed(generateSeed()).nodeId;
    // Four requests: under the relay's per-peer burst (rate_limit.unknown.per_second = 5).
    for (
      const req of [
        { type: "RelayConnect", source_id: s.targetId, target_id: s.targetId },
        { type: "RelayConnect", source_id: stranger, target_id: s.targetId },
        { type: "RelayAnnounce", node_id: s.targetId, timestamp: ts() },
        { type: "RelayAnnounce", node_id: stranger, timestamp: ts() },
      ] as const
    ) {
      const r = await askLabel(session, req);
      r.stream?.abort(0);
      labels.push(r.label);
    }
    await session.disconnect();
  }
  for (const l of labels) count(s.row, `spoof → ${l}`);
  s.row.attempts += labels.length;
  const want = relayError(RelayErrorCode.SOURCE_MISMATCH);
  expect(s.row, labels.every((l) => l === want), `every spoofed ID answered ${want} (${labels.join(", ")})`);
  const st = await relayStats(s);
  expect(s.row, st.registered === 1 && st.pipes === 0, "no spoof registered anybody or opened a pipe");
}

/** 100 identities on 127.0.0.1 ask for four pipes each to the target; then a dialler on 127.0.0.2. */
async function sybilFill(s: Scene): Promise<void> {
  const started = Date.now();
  const made = await pool(Array.from({ length: SYBILS }), 16, async () => {
    const n = await s.crowd.add({ name: "sybil" });
    return { id: n.nodeId, session: await sessionWithRelay(s, n) };
  }, started + Math.max(20_000, s.ctx.budgetMs));
  const sessions = made.flatMap((m) => (m?.ok ? [m.value] : []));
  expect(s.row, sessions.length === SYBILS, `all ${SYBILS} sybils authenticated (${sessions.length})`);
  const asks = sessions.flatMap(({ id, session }) =>
    Array.from(
      { length: ASKS_PER_SYBIL },
      () => askLabel(session, { type: "RelayConnect", source_id: id, target_id: s.targetId }),
    )
  );
  const labels = (await Promise.all(asks)).map((r) => r.label);
  s.row.attempts += labels.length;
  for (const l of labels) count(s.row, `sybil → ${l}`);
  const held = labels.filter((l) => l === READY).length;
  const share = Math.ceil(PIPES_PER_TARGET / 2);
  const perSource = relayError(RelayErrorCode.PER_SOURCE_LIMIT);
  expect(s.row, held > 0 && held <= share, `one address holds 1..${share} of the target's pipes (${held})`);
  expect(
    s.row,
    labels.every((l) => l === READY || l === perSource),
    `every other sybil request answered ${perSource}`,
  );
  s.ctx.log(`sybils: ${sessions.length} sessions in ${Date.now() - started} ms, ${held} pipes held`);
  const legit = await pairAndPing(s, await s.crowd.add({ host: "127.0.0.2", name: "legit" }));
  count(s.row, `legitimate dialler (127.0.0.2) → ${legit}`);
  expect(s.row, legit === "paired and pinged", `a dialler on 127.0.0.2 pairs and pings during the fill (${legit})`);
  await unusedTornDown(s, held);
}

/** Dial the target through the relay, ping it, hang up: the outcome as a label. */
async function pairAndPing(s: Scene, n: AtlasNode): Promise<string> {
  try {
    const session = await dialViaRelay(n, s.relayText, s.targetId);
    await session.ping(5000);
    await session.disconnect();
    return "paired and pinged";
  } catch (e) {
    const m = /RelayError (\d+)/.exec((e as Error).message);
    return m ? relayError(Number(m[1])) : errorLabel(e);
  }
}

/** Pipes that never carried an inner packet are closed after the pairing timeout: all of them. */
async function unusedTornDown(s: Scene, atLeast: number): Promise<void> {
  const before = (await relayStats(s)).pipes_closed_unused;
  const r = await until(() => relayStats(s), (st) => st.pipes === 0, PAIRING_TIMEOUT_S * 1000 + 8000);
  const closed = r.value.pipes_closed_unused - before;
  count(s.row, "unused pipes torn down", closed);
  expect(s.row, r.held, `every pipe closed within the pairing timeout (${r.value.pipes} left)`);
  expect(s.row, closed >= atLeast, `the ${atLeast} unused pipes were closed as unused (${closed})`);
}

/** Two addresses take the target's 8 slots; a third is refused with 8, then pairs once they are freed. */
async function exhaustTarget(s: Scene): Promise<void> {
  const share = Math.ceil(PIPES_PER_TARGET / 2);
  const labels: string[] = [];
  for (const host of ["127.0.0.3", "127.0.0.4"]) {
    const holder = await s.crowd.add({ host, name: "holder" });
    const session = await sessionWithRelay(s, holder);
    for (let i = 0; i < share; i++) {
      const ask = { type: "RelayConnect", source_id: holder.nodeId, target_id: s.targetId } as const;
      labels.push((await askLabel(session, ask)).label);
    }
  }
  const late = await s.crowd.add({ host: "127.0.0.5", name: "late" });
  const busy = [await pairAndPing(s, late), await pairAndPing(s, late)];
  s.row.attempts += labels.length + busy.length;
  for (const l of labels) count(s.row, `holder → ${l}`);
  for (const l of busy) count(s.row, `ninth pipe → ${l}`);
  const targetBusy = relayError(RelayErrorCode.TARGET_BUSY);
  expect(s.row, labels.every((l) => l === READY), `two addresses hold the target's ${PIPES_PER_TARGET} pipes`);
  expect(s.row, busy.every((l) => l === targetBusy), `the ninth pipe is refused ${targetBusy} (${busy.join(", ")})`);
  expect(s.row, (await relayStats(s)).registered === 1, "the busy target stays registered");
  await unusedTornDown(s, PIPES_PER_TARGET);
  const again = await pairAndPing(s, late);
  count(s.row, `after the teardown → ${again}`);
  expect(s.row, again === "paired and pinged", `the target pairs again once the slots are free (${again})`);
}
