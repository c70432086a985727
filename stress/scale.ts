/**
 * Scale (issue 16; docs/protocol.md#transport, docs/protocol.md#handshake, docs/protocol.md#relay), three parts:
 * 1. 500 concurrent peers (100 in the CI pass) on one daemon, each pinging once while all are
 *    connected; the daemon answers `atlas status` listing them. This daemon has
 *    `transport.max_connections` = 600 and — because every peer comes from 127.0.0.1 — the
 *    per-address handshake limit `security.handshakes_per_ip_per_minute` raised to 5000 and
 *    `security.handshake_limit` (handshakes in flight) to 100.
 * 2. At the default `transport.max_connections` (200; same handshake limits raised), the 201st
 *    connection is refused cleanly: the daemon drops its Initials without a word (endpoint.ts),
 *    so the dialler gets ERR_UNREACHABLE at its `dial_timeout`; the 200 stay served, and once
 *    one leaves, the newcomer gets in.
 * 3. 64 relay pipes at once through one `atlas relay` at its default limits — capacity 64, 8 per
 *    target, 8 per source address, 4 per source — spread over 8 targets and 16 diallers on 8
 *    addresses (127.0.0.2–9); every pipe's inner session pings; the 65th is RelayError 2.
 */
import type { AtlasNode } from "../src/net/node.ts";
import type { Session } from "../src/net/session.ts";
import { dialViaRelay } from "../src/relay/dial.ts";
import { RelayPresence } from "../src/relay/presence.ts";
import { formatAddr } from "../src/transport/addr.ts";
import { silentLogger } from "../src/util/log.ts";
import { RelayErrorCode } from "../src/wire/messages.ts";
import { runAtlas } from "../test/helpers/cli.ts";
import { fullScale } from "./budget.ts";
import { Crowd, pool } from "./crowd.ts";
import { errorLabel } from "./exchange.ts";
import { count, expect, mib, newRow, type Phase, type PhaseContext, type PhaseRow, rss } from "./harness.ts";
import { startVictim, statusOf, type Victim } from "./victim.ts";
import { until } from "./wait.ts";

const OPEN_AT_ONCE = 16;
const PING_MS = 10_000;
const HANDSHAKES = "[security]\nhandshakes_per_ip_per_minute = 5000\nhandshake_limit = 100\n";
const DEFAULT_MAX_CONNECTIONS = 200;
/** The 201st dialler's dial timeout: short, so the refusal is seen quickly. */
const OVER_LIMIT_DIAL_S = 2;
const RELAY_TARGETS = 8;
const RELAY_ADDRESSES = 8;
const DIALLERS_PER_ADDRESS = 2;
const PIPES_PER_DIALLER = 4;

interface Scene {
  row: PhaseRow;
  ctx: PhaseContext;
  crowd: Crowd;
}

export const scalePhase: Phase = {
  name: "scale",
  weight: 2,
  async run(ctx) {
    const peers = fullScale(ctx) ? 500 : 100;
    const row = newRow(`scale (${peers} peers on one daemon, the 201st connection, 64 relay pipes)`);
    const crowd = await Crowd.open();
    const s: Scene = { row, ctx, crowd };
    try {
      await manyPeers(s, peers);
      await connectionLimit(s);
      await relayPipes(s);
      return row;
    } finally {
      await crowd.close();
    }
  },
};

/** `n` crowd nodes connected to `v` (OPEN_AT_ONCE at a time); the sessions that made it. */
async function connectMany(s: Scene, v: Victim, n: number, deadline: number): Promise<Session[]> {
  const r = await pool(Array.from({ length: n }), OPEN_AT_ONCE, async () => {
    const node = await s.crowd.add({ name: "peer" });
    return node.connectTo(v.addr, { expectedNodeId: v.nodeId });
  }, deadline);
  for (const x of r) if (x && !x.ok) count(s.row, `connect → ${errorLabel(x.error)}`);
  return r.flatMap((x) => (x?.ok ? [x.value] : []));
}

/** Every session pings once, all at once (bounded): how many got their Pong. */
async function pingAll(sessions: Session[]): Promise<number> {
  const r = await pool(sessions, 64, (x) => x.ping(PING_MS));
  return r.filter((x) => x?.ok).length;
}

async function manyPeers(s: Scene, n: number): Promise<void> {
  const v = await startVictim(`[transport]\nmax_connections = 600\n${HANDSHAKES}`);
  try {
    s.row.rssBefore = rss(v.pid);
    const started = Date.now();
    const sessions = await connectMany(s, v, n, started + Math.max(60_000, s.ctx.budgetMs));
    const connectMs = Date.now() - started;
    const ponged = await pingAll(sessions);
    s.row.attempts += n;
    count(s.row, "peers connected", sessions.length);
    count(s.row, "peers ponged", ponged);
    const st = await runAtlas(["status", "--json"], { home: v.home, timeoutMs: 15_000 });
    const listed = st.code === 0 ? (JSON.parse(st.stdout).sessions as unknown[]).length : -1;
    s.row.rssAfter = rss(v.pid);
    expect(s.row, sessions.length === n, `all ${n} peers connected (${sessions.length})`);
    expect(s.row, ponged === n, `every peer got its Pong while all were connected (${ponged})`);
    expect(s.row, listed === n, `\`atlas status\` answers and lists ${n} sessions (${listed}; exit ${st.code})`);
    s.row.notes.push(
      `${n} peers connected in ${(connectMs / 1000).toFixed(1)} s (${OPEN_AT_ONCE} at a time); ` +
        `daemon RSS ${mib(s.row.rssBefore)} → ${mib(s.row.rssAfter)}`,
    );
    await pool(sessions, 32, (x) => x.disconnect());
  } finally {
    await v.stop();
  }
}

async function connectionLimit(s: Scene): Promise<void> {
  const v = await startVictim(HANDSHAKES);
  try {
    const idle = rss(v.pid);
    const sessions = await connectMany(s, v, DEFAULT_MAX_CONNECTIONS, Date.now() + Math.max(60_000, s.ctx.budgetMs));
    expect(s.row, sessions.length === DEFAULT_MAX_CONNECTIONS, `200 connected (${sessions.length})`);
    const late = await s.crowd.add({ name: "late", tune: (c) => (c.transport.dial_timeout = OVER_LIMIT_DIAL_S) });
    const t0 = Date.now();
    const refused = await late.connectTo(v.addr, { expectedNodeId: v.nodeId }).then(
      (x) => (void x.disconnect(), "connected"),
      (e) => errorLabel(e),
    );
    const tookMs = Date.now() - t0;
    s.row.attempts += DEFAULT_MAX_CONNECTIONS + 1;
    count(s.row, `201st connection → ${refused}`);
    expect(s.row, refused === "ERR_UNREACHABLE", `the 201st dial ends ERR_UNREACHABLE (${refused})`);
    const window = tookMs >= OVER_LIMIT_DIAL_S * 1000 - 100 && tookMs <= OVER_LIMIT_DIAL_S * 1000 + 1500;
    expect(s.row, window, `… at its dial_timeout of ${OVER_LIMIT_DIAL_S} s (${tookMs} ms)`);
    const ponged = await pingAll(sessions);
    count(s.row, "of the 200, ponged after the refusal", ponged);
    expect(s.row, ponged === sessions.length, `the 200 stay served (${ponged} ponged)`);
    await sessions[0]!.disconnect();
    const room = await until(async () => (await statusOf(v.home)).sessions.length, (k) => k < 200, 5000);
    const after = room.held ? await dialWithRetry(late, v) : "no room";
    count(s.row, `after one left → ${after}`);
    expect(s.row, after === "connected", `a newcomer gets in once one of the 200 left (${after})`);
    s.row.notes.push(
      `the 201st refused after ${tookMs} ms; 200-connection daemon RSS ${mib(idle)} → ${mib(rss(v.pid))}`,
    );
    await pool(sessions, 32, (x) => x.disconnect());
  } finally {
    await v.stop();
  }
}

/** The freed slot may take a closing period to come back: three tries. */
async function dialWithRetry(n: AtlasNode, v: Victim): Promise<string> {
  let last = "";
  for (let i = 0; i < 3; i++) {
    try {
      await (await n.connectTo(v.addr, { expectedNodeId: v.nodeId })).disconnect();
      return "connected";
    } catch (e) {
      last = errorLabel(e);
    }
  }
  return last;
}

/** Targets registered with the relay (presence running), on 127.0.0.1. */
async function relayTargets(s: Scene, relayText: string): Promise<{ nodes: AtlasNode[]; stop: () => Promise<void> }> {
  const presences: RelayPresence[] = [];
  const nodes: AtlasNode[] = [];
  for (let i = 0; i < RELAY_TARGETS; i++) {
    const n = await s.crowd.add({
      name: "target",
      listen: true,
      tune: (c) => ((c.network.relays = [relayText]), (c.transport.relay_announce_interval = 1)),
    });
    const p = new RelayPresence(n, silentLogger);
    p.start();
    presences.push(p);
    nodes.push(n);
  }
  return { nodes, stop: async () => void await Promise.all(presences.map((p) => p.stop())) };
}

/**
 * Which targets dialler `j` of address `i` dials: (i + 4j + k) mod 8 for k < 4, so that every
 * target gets one pipe from each address, every address 8 pipes and every dialler 4.
 */
function aims(i: number, j: number): number[] {
  return Array.from({ length: PIPES_PER_DIALLER }, (_, k) => (i + PIPES_PER_DIALLER * j + k) % RELAY_TARGETS);
}

async function relayPipes(s: Scene): Promise<void> {
  const relay = await startVictim("", { cmd: ["relay"] });
  const relayText = `${relay.nodeId}@${formatAddr(relay.addr)}`;
  const targets = await relayTargets(s, relayText);
  try {
    const reg = await until(async () => (await statusOf(relay.home)).relay_server!, (r) => r.registered === 8, 15_000);
    expect(s.row, reg.held, `the ${RELAY_TARGETS} targets registered (${reg.value.registered})`);
    const before = rss(relay.pid);
    const plan: { n: AtlasNode; target: AtlasNode }[] = [];
    for (let i = 0; i < RELAY_ADDRESSES; i++) {
      for (let j = 0; j < DIALLERS_PER_ADDRESS; j++) {
        const n = await s.crowd.add({ host: `127.0.0.${2 + i}`, name: "dialler" });
        for (const t of aims(i, j)) plan.push({ n, target: targets.nodes[t]! });
      }
    }
    const started = Date.now();
    const dialled = await pool(plan, OPEN_AT_ONCE, (p) => dialViaRelay(p.n, relayText, p.target.nodeId));
    const pipes = dialled.flatMap((x) => (x?.ok ? [x.value] : []));
    for (const x of dialled) if (x && !x.ok) count(s.row, `relay pipe → ${errorLabel(x.error)}`);
    const openMs = Date.now() - started;
    const ponged = await pingAll(pipes);
    const st = (await statusOf(relay.home)).relay_server!;
    const extra = await s.crowd.add({ host: "127.0.0.10", name: "65th" });
    const over = await dialViaRelay(extra, relayText, targets.nodes[0]!.nodeId).then(
      (x) => (void x.disconnect(), "paired"),
      (e) => /RelayError (\d+)/.exec((e as Error).message)?.[0] ?? errorLabel(e),
    );
    s.row.attempts += plan.length + 1;
    count(s.row, "relay pipes open", pipes.length);
    count(s.row, "relay pipes ponged", ponged);
    count(s.row, `65th pipe → ${over}`);
    expect(
      s.row,
      pipes.length === plan.length && st.pipes === plan.length,
      `64 pipes at once (${st.pipes} at the relay)`,
    );
    expect(s.row, ponged === plan.length, `every pipe's session ponged (${ponged})`);
    const atCapacity = `RelayError ${RelayErrorCode.AT_CAPACITY}`;
    expect(s.row, over === atCapacity, `the 65th pipe is refused ${atCapacity} (${over})`);
    expect(
      s.row,
      relay.daemon.proc.exitCode === null && st.registered === 8,
      "the relay is healthy, targets registered",
    );
    s.row.notes.push(
      `${pipes.length} relay pipes opened in ${(openMs / 1000).toFixed(1)} s, ${st.forwarded_packets} packets ` +
        `forwarded, ${st.dropped_rate_limit + st.dropped_queue_full} dropped; relay RSS ${mib(before)} → ${
          mib(rss(relay.pid))
        }`,
    );
    await pool(pipes, 16, (x) => x.disconnect());
  } finally {
    await targets.stop();
    await relay.stop();
  }
}
