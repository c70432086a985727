/**
 * Relay phase of `npm run bench` (BENCH_ONLY=relay runs it alone): docs/protocol.md#relay relayed connections
 * through three processes on 127.0.0.1 —
 *   - the relay: bench/phases/relay-child.ts relay (AtlasNode + RelayServer), its own process;
 *   - the target agent A: bench/phases/relay-child.ts agent (AtlasNode listening + RelayPresence announcing
 *     to the relay + the bench "Message" handler with a live byte counter), its own process;
 *   - the dialler(s) B: AtlasNodes in this process (bench/run.ts), dialling with dialViaRelay().
 * Every relayed figure has a direct figure (B → A without the relay) measured in the same run.
 *
 * Figures:
 * 1. Setup: dialViaRelay() with B's session to the relay already open and reused, i.e. RelayConnect
 *    sent → RelayReady → inner QUIC handshake over the pipe → Atlas handshake → VerifyAck (the
 *    Session exists); median and p90 of 20 (after 3 warm-ups), interleaved with 20 direct
 *    connectTo(A) (connect + Atlas handshake). Breakdown by wrapping B's node.runOutbound (called
 *    when RelayReady has arrived, with the inner connection) — no change to src/. The first session
 *    with the relay (a normal direct connect) is timed once and excluded from the setup figure.
 * 2. Bulk, one stream (a "bench/bulk" Message, then raw bytes; the agent counts what it reads):
 *    rate = bytes the agent's handler read between two samples taken over IPC after a warm-up
 *    (the sender keeps ≤ 4 × 256 KiB writes queued; the run ends by closing the session). The
 *    token bucket starts full (1 s of burst), so the capped run's window starts after a 2 s
 *    warm-up, when the burst is spent; the figure is goodput (inner QUIC headers, the 4-byte pipe
 *    prefix and the ACK direction are not counted, the relay's bucket counts them: at most
 *    ≈ 0.955 of the cap can be goodput). Each relayed run uses a fresh dialler node in this process.
 *    - cap off (relay_bandwidth_limit 0) vs direct bulk B → A, same method: 3 rounds, interleaved;
 *    - cap at its default (relay_bandwidth_limit 1 048 576 B/s per direction) vs 1 MiB/s: 3 runs
 *      (the inner CUBIC sometimes runs away against the relay's policer, see RESULTS.md), median.
 *    The relay's drop counters, the inner connection's loss/RTT/cwnd, a per-second trace and the
 *    CPU of the three processes over each window are printed (notes and console).
 * 3. Aggregate: 32 dialler nodes in this process (32 sources: one source may hold at most
 *    relay_pipes_per_source = 4 pipes, and one node keeps one session per peer), each with its own
 *    session to the relay and one relayed session to A, all sending bulk at once with the cap off;
 *    forwarded packets and bytes from the relay's status() counters before/after the window, and
 *    the relay process's CPU time over the same window.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { cpus, loadavg, platform } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { uuidv7 } from "uuidv7";
import type { Session } from "../../src/net/session.ts";
import type { AtlasNode } from "../../src/net/node.ts";
import { dialViaRelay } from "../../src/relay/dial.ts";
import type { RelayStats } from "../../src/relay/server.ts";
import { openStore } from "../../src/store/index.ts";
import type { QuicConnection } from "../../src/transport/connection.ts";
import { FramedStream } from "../../src/wire/framed-stream.ts";
import type { WireMessage } from "../../src/wire/messages.ts";
import { type BenchNode, deadline, HOST, median, percentile, startNode, startNodeWith } from "../common.ts";
import type { PhaseApi } from "./api.ts";
import { ms } from "./format.ts";
import type { RelayChildCmd, RelayChildReady } from "./relay-child.ts";

/** Counts and durations of this phase (ms). Every loop stops at its count or its cap. */
export const RN = {
  setupWarmup: 3,
  setup: 20,
  chunk: 256 * 1024,
  queued: 4,
  directWarmMs: 1000,
  directMs: 3000,
  offRounds: 3, // direct and cap-off runs, interleaved
  offWarmMs: 1000,
  offMs: 3000,
  capRounds: 3,
  capWarmMs: 2000, // > 1 s: the bucket's initial 1 s burst is spent before the window starts
  capMs: 6000,
  closeWaitMs: 3000,
  aggPipes: 32,
  aggDialConcurrency: 8,
  aggWarmMs: 1000,
  aggMs: 5000,
  rttWarmup: 50,
  rtt: 500,
} as const;
const RCAP = { setup: 20_000, dial: 15_000, childStart: 30_000, rtt: 10_000 } as const;
const DEFAULT_CAP = 1_048_576;

/** CPUs of the dialler, relay and agent (BENCH_RELAY_PIN, "none" = unpinned); the js-libp2p phase's relayed trio too. */
export const relayLayout = (): string => process.env.BENCH_RELAY_PIN ?? "0,1,1";
/** The relay rows' placement tag when pinned: part of their text, so js-libp2p's figure can match it. */
export const relayTag = (d: string, r: string, a: string): string =>
  r === a ? ` [diallers CPU ${d}, relay + agent CPU ${r}]` : ` [diallers CPU ${d}, relay CPU ${r}, agent CPU ${a}]`;

const sleep = (t: number) => new Promise((r) => setTimeout(r, t));
export const mbs = (x: number) => `${x < 10 ? x.toFixed(2) : x.toFixed(1)} MB/s`;

// ---- children ----

export interface Child {
  proc: ChildProcess;
  ready: RelayChildReady;
  rpc<T = Record<string, unknown>>(m: Omit<RelayChildCmd, "id">, timeoutMs?: number): Promise<T>;
}

export async function spawnChild(root: string, args: string[]): Promise<Child> {
  const prof = process.env.BENCH_RELAY_CPU_PROF && args[0] === process.env.BENCH_RELAY_CPU_PROF_ROLE
    ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_RELAY_CPU_PROF}`]
    : [];
  const proc = spawn(process.execPath, [
    ...prof,
    "--import",
    "tsx",
    fileURLToPath(new URL("relay-child.ts", import.meta.url)),
    ...args,
  ], {
    cwd: root,
    stdio: ["ignore", "inherit", "inherit", "ipc"],
    env: { ...process.env, BENCH_DIR: process.env.BENCH_DIR },
  });
  let id = 0;
  const waiting = new Map<number, (m: Record<string, unknown>) => void>();
  const ready = await new Promise<RelayChildReady>((resolve, reject) => {
    const t = setTimeout(
      () => reject(new Error(`relay-child ${args[0]} did not start within ${RCAP.childStart / 1000} s`)),
      RCAP.childStart,
    );
    proc.on("message", (m: Record<string, unknown>) => {
      if (m.type === "ready") {
        clearTimeout(t);
        resolve(m as unknown as RelayChildReady);
      } else if (typeof m.id === "number") waiting.get(m.id)?.(m);
    });
    proc.once("exit", (code) => reject(new Error(`relay-child ${args[0]} exited with code ${code}`)));
  });
  const rpc = <T>(m: Omit<RelayChildCmd, "id">, timeoutMs = 10_000): Promise<T> => {
    const rid = ++id;
    return new Promise<T>((resolve, reject) => {
      const t = setTimeout(() => {
        waiting.delete(rid);
        reject(new Error(`relay-child ${args[0]} did not answer '${m.cmd}' within ${timeoutMs} ms`));
      }, timeoutMs);
      waiting.set(rid, (r) => {
        waiting.delete(rid);
        clearTimeout(t);
        resolve(r as T);
      });
      proc.send({ ...m, id: rid });
    });
  };
  return { proc, ready, rpc };
}

export interface Status {
  relay: RelayStats | null;
  sessions: number;
  dgramDrops: number;
  cpuMs: number;
  t: number;
}
interface Progress {
  bytes: number;
  open: number;
  done: number;
  cpuMs: number;
}

// ---- helpers ----

function bulkMessage(from: AtlasNode, to: string): WireMessage {
  return {
    type: "Message",
    id: `msg_${uuidv7()}`,
    from: from.nodeId,
    to,
    timestamp: Math.floor(Date.now() / 1000),
    topic: "bench/bulk",
    body: JSON.stringify({ bytes: "timed" }),
  };
}

/** The agent's byte counter, stamped with this process's clock (midpoint of the IPC round trip). */
export async function sample(agent: Child): Promise<Progress & { t: number }> {
  const a = performance.now();
  const p = await agent.rpc<Progress>({ cmd: "progress" });
  return { ...p, t: (a + performance.now()) / 2 };
}

/** Start a bulk stream on `s`: returns a stop() that ends the writer (does not close the session). */
export async function startBulk(
  from: AtlasNode,
  s: Session,
  capMs: number,
): Promise<{ stop: () => Promise<void>; written: () => number }> {
  const st = s.conn.openStream();
  const fs = new FramedStream(st);
  await fs.write(bulkMessage(from, s.nodeId));
  const go = await fs.read(10_000);
  if (go?.type !== "MessageAck") throw new Error(`bulk: unexpected ${go?.type}`);
  const chunk = new Uint8Array(RN.chunk).fill(0x7a);
  let stopped = false;
  let sent = 0;
  const t0 = performance.now();
  const writer = (async () => {
    const queue: Promise<void>[] = [];
    while (!stopped && performance.now() - t0 < capMs) {
      const w = st.write(chunk);
      w.catch(() => {});
      queue.push(w);
      sent += chunk.length;
      if (queue.length >= RN.queued) await deadline(queue.shift()!, 15_000, "bulk write");
    }
  })();
  writer.catch(() => {});
  return {
    written: () => sent,
    stop: async () => {
      stopped = true;
      await writer.catch((e) => {
        if (s.isOpen) throw e;
      });
    },
  };
}

const selfCpuMs = () => {
  const c = process.cpuUsage();
  return (c.user + c.system) / 1000;
};

interface Cpu {
  dialler: number;
  relay: number;
  agent: number;
}
const cpuText = (c: Cpu) =>
  `CPU over the window (fraction of one core): dialler process ${(c.dialler * 100).toFixed(0)}%, relay ${
    Number.isNaN(c.relay) ? "—" : (c.relay * 100).toFixed(0) + "%"
  }, agent ${(c.agent * 100).toFixed(0)}%`;

/** CPU time of the three processes, for fractions of a core over a window. */
async function cpuMark(agent: Child, relay: Child | null): Promise<{ t: number; d: number; r: number; a: number }> {
  const [p, r] = await Promise.all([
    agent.rpc<Progress>({ cmd: "progress" }),
    relay ? relay.rpc<Status>({ cmd: "status" }) : null,
  ]);
  return { t: performance.now(), d: selfCpuMs(), r: r ? r.cpuMs : NaN, a: p.cpuMs };
}
const cpuOver = (x: Awaited<ReturnType<typeof cpuMark>>, y: Awaited<ReturnType<typeof cpuMark>>): Cpu => {
  const dt = y.t - x.t;
  return { dialler: (y.d - x.d) / dt, relay: (y.r - x.r) / dt, agent: (y.a - x.a) / dt };
};

/**
 * One timed bulk run on a fresh session: goodput at the agent between two samples. `trace`: one
 * entry per second — kB read by the agent / inner packets sent / declared lost / cwnd KiB / RTT ms
 * (the dialler's quiche stats of `s`).
 */
async function timedBulk(
  from: AtlasNode,
  s: Session,
  agent: Child,
  relay: Child | null,
  warmMs: number,
  measureMs: number,
): Promise<{ mbs: number; bytes: number; ms: number; overallMbs: number; cpu: Cpu; trace: string[] }> {
  const base = await sample(agent);
  const b = await startBulk(from, s, warmMs + measureMs + 5000);
  const tGo = performance.now();
  const trace: string[] = [];
  let tracing = true;
  const tracer = (async () => {
    let prev = { bytes: base.bytes, ...s.conn.native.stats() };
    while (tracing) {
      await sleep(1000);
      if (!tracing) return;
      const p = await sample(agent);
      const st = s.conn.native.stats();
      const ps = s.conn.native.pathStats()[0];
      trace.push(
        `${Math.round((p.bytes - prev.bytes) / 1000)}/${st.sent - prev.sent}/${st.lost - prev.lost}/${
          ps ? Math.round(ps.cwnd / 1024) : "?"
        }/${ps?.rtt ?? "?"}`,
      );
      prev = { bytes: p.bytes, ...st };
    }
  })();
  await sleep(warmMs);
  const c0 = await cpuMark(agent, relay);
  const p0 = await sample(agent);
  await sleep(measureMs);
  const p1 = await sample(agent);
  const c1 = await cpuMark(agent, relay);
  tracing = false;
  await tracer.catch(() => {});
  await b.stop().catch(() => {});
  const bytes = p1.bytes - p0.bytes;
  return {
    mbs: bytes / 1e6 / ((p1.t - p0.t) / 1000),
    bytes,
    ms: p1.t - p0.t,
    overallMbs: (p1.bytes - base.bytes) / 1e6 / ((p1.t - tGo) / 1000),
    cpu: cpuOver(c0, c1),
    trace,
  };
}

export async function closeSession(s: Session): Promise<void> {
  s.close("bench");
  await deadline(s.done, 10_000, "session close");
}

const delta = (a: RelayStats, b: RelayStats) => ({
  packets: b.forwarded_packets - a.forwarded_packets,
  bytes: b.forwarded_bytes - a.forwarded_bytes,
  rate: b.dropped_rate_limit - a.dropped_rate_limit,
  queue: b.dropped_queue_full - a.dropped_queue_full,
  unknown: b.dropped_unknown_session - a.dropped_unknown_session,
  refused: b.pipes_refused - a.pipes_refused,
});
const dropsText = (d: ReturnType<typeof delta>) =>
  `dropped_rate_limit ${d.rate}, dropped_queue_full ${d.queue}, dropped_unknown_session ${d.unknown}`;

/** The inner connection's quiche counters (the dialler is the inner QUIC client). */
export function innerStats(
  c: QuicConnection,
): { sent: number; lost: number; retransMB: number; rtt: number; cwndKiB: number } {
  const st = c.native.stats();
  const p = c.native.pathStats()[0];
  return {
    sent: st.sent,
    lost: st.lost,
    retransMB: st.streamRetransBytes / 1e6,
    rtt: p?.rtt ?? NaN,
    cwndKiB: p ? p.cwnd / 1024 : NaN,
  };
}

// ---- the phase ----

export async function relayPhase(api: PhaseApi & { benchOnly: boolean }): Promise<void> {
  const t0 = performance.now();
  const load0 = loadavg()[0]!.toFixed(2);
  const children: Child[] = [];
  const kill = () => {
    for (const c of children) if (c.proc.exitCode === null) c.proc.kill("SIGKILL");
  };
  process.on("exit", kill);
  const nodes: BenchNode[] = [];
  const extra: AtlasNode[] = [];
  let stopping = false;
  try {
    const relay = await spawnChild(api.root, ["relay"]);
    children.push(relay);
    const relayAddr = `${relay.ready.nodeId}@${HOST}:${relay.ready.port}`;
    const agent = await spawnChild(api.root, ["agent", relayAddr]);
    children.push(agent);
    const agentId = agent.ready.nodeId;
    const agentAddr = { host: HOST, port: agent.ready.port };

    // Placement: this process (diallers) on CPU 0 (run.ts pinned it there), relay and agent share
    // CPU 1 — so the direct baseline (B on CPU 0, A on CPU 1) is placed like run.ts's bulk phase.
    let placement = "not pinned (3 processes, 2 cores: the scheduler places them)";
    let tag = " [unpinned]";
    const ncpu = cpus().length;
    const layout = relayLayout();
    if (api.pinning && platform() === "linux" && ncpu >= 2 && layout === "none") api.pin(process.pid, `0-${ncpu - 1}`);
    else if (api.pinning && platform() === "linux" && ncpu >= 2) {
      const [d, r, a] = layout.split(",");
      if (api.pin(process.pid, d!) && api.pin(relay.proc.pid!, r!) && api.pin(agent.proc.pid!, a!)) {
        placement =
          `diallers (this process) on CPU ${d}, relay on CPU ${r}, agent on CPU ${a} (taskset; 3 processes on ${ncpu} cores)`;
        tag = relayTag(d!, r!, a!);
      }
    }
    api.log(`relay: relay udp/${relay.ready.port}, agent udp/${agent.ready.port} registered; ${placement}`);

    const dialler = await startNode("bench-relay-dialler", false);
    nodes.push(dialler);
    const B = dialler.node;

    // the first session with the relay: a normal direct connect (excluded from the setup figure)
    const rs0 = performance.now();
    const relaySession = await B.connectTo({ host: HOST, port: relay.ready.port }, {
      expectedNodeId: relay.ready.nodeId,
    });
    const relaySessionMs = performance.now() - rs0;

    // ---- 1. setup ----
    const wrapped = B.runOutbound.bind(B);
    let mark: { ready: number; established: number } | null = null;
    B.runOutbound = (conn, o) => {
      if (o.path === "relay") {
        const m = (mark = { ready: performance.now(), established: NaN });
        void conn.established.then(() => (m.established = performance.now())).catch(() => {});
      }
      return wrapped(conn, o);
    };
    const relayedDial = async () => {
      mark = null;
      const s0 = performance.now();
      const s = await deadline(dialViaRelay(B, relayAddr, agentId), RCAP.dial, "relayed dial");
      const end = performance.now();
      if (s.path !== "relay") throw new Error(`relayed dial gave a ${s.path} session`);
      const m = mark as { ready: number; established: number } | null;
      return {
        s,
        total: end - s0,
        pairing: m ? m.ready - s0 : NaN,
        quic: m ? m.established - m.ready : NaN,
        atlas: m ? end - m.established : NaN,
      };
    };
    const directDial = async () => {
      const s0 = performance.now();
      const s = await deadline(B.connectTo(agentAddr, { expectedNodeId: agentId }), RCAP.dial, "direct dial");
      return { s, total: performance.now() - s0 };
    };
    for (let i = 0; i < RN.setupWarmup; i++) {
      await closeSession((await directDial()).s);
      await closeSession((await relayedDial()).s);
    }
    const st0 = (await relay.rpc<Status>({ cmd: "status" })).relay!;
    const setup = {
      total: [] as number[],
      pairing: [] as number[],
      quic: [] as number[],
      atlas: [] as number[],
      direct: [] as number[],
    };
    const ts = performance.now();
    for (let i = 0; i < RN.setup && performance.now() - ts < RCAP.setup; i++) {
      const d = await directDial();
      setup.direct.push(d.total);
      await closeSession(d.s);
      const r = await relayedDial();
      setup.total.push(r.total);
      setup.pairing.push(r.pairing);
      setup.quic.push(r.quic);
      setup.atlas.push(r.atlas);
      await closeSession(r.s);
    }
    B.runOutbound = wrapped;
    const st1 = (await relay.rpc<Status>({ cmd: "status" })).relay!;
    const rm50 = median(setup.total);
    const dm50 = median(setup.direct);
    api.addRow(
      `relay: setup${tag}, RelayConnect sent → VerifyAck in the pipe (session to the relay reused), median of ${setup.total.length} (p90) — vs direct connect + handshake to the agent`,
      `${ms(rm50)} (p90 ${ms(percentile(setup.total, 90))})`,
      "",
      "",
      rm50 / dm50,
      "direct",
    );
    api.addRow(
      `relay: ↳ direct connect + Atlas handshake, this process → agent, median of ${setup.direct.length} (p90), interleaved with the above`,
      `${ms(dm50)} (p90 ${ms(percentile(setup.direct, 90))})`,
      "",
      "",
    );
    api.addRow(
      `relay: ↳ of which RelayConnect → RelayReady / inner QUIC handshake over the pipe / Atlas handshake inside, medians`,
      `${ms(median(setup.pairing))} / ${ms(median(setup.quic))} / ${ms(median(setup.atlas))}`,
      "",
      "",
    );
    api.addRow(
      `relay: ↳ first session with the relay (direct connect + handshake, once; not part of the setup figure)`,
      ms(relaySessionMs),
      "",
      "",
    );
    api.note(
      `relay: setup runs (ms): relayed ${setup.total.map((x) => x.toFixed(1)).join(", ")}; direct ${
        setup.direct.map((x) => x.toFixed(1)).join(", ")
      }; ` +
        `relay counters over the setup loop: ${st1.pipes_opened - st0.pipes_opened} pipes opened, ${
          st1.pipes_refused - st0.pipes_refused
        } refused`,
    );
    // ---- 1b. round trip: Ping/Pong over a relayed session, then over a direct one to the same agent ----
    const pings = async (s: Session): Promise<number[]> => {
      for (let i = 0; i < RN.rttWarmup; i++) await s.ping(5000);
      const t: number[] = [];
      const end = performance.now() + RCAP.rtt;
      for (let i = 0; i < RN.rtt && performance.now() < end; i++) t.push((await s.ping(5000)).rttMs);
      return t;
    };
    const rr = await relayedDial();
    const relayedRtt = await pings(rr.s);
    await closeSession(rr.s);
    const dr = await directDial();
    const directRtt = await pings(dr.s);
    await closeSession(dr.s);
    api.addRow(
      `relay: round trip${tag}, Ping/Pong over the relayed session, median of ${relayedRtt.length} (p99) — vs direct to the same agent`,
      `${ms(median(relayedRtt))} (p99 ${ms(percentile(relayedRtt, 99))})`,
      "",
      "",
      median(relayedRtt) / median(directRtt),
      "direct",
    );
    api.addRow(
      `relay: ↳ direct round trip, this process → agent, median of ${directRtt.length} (p99)`,
      `${ms(median(directRtt))} (p99 ${ms(percentile(directRtt, 99))})`,
      "",
      "",
    );
    api.log(
      `relay setup: relayed ${ms(rm50)} (pairing ${ms(median(setup.pairing))}, inner QUIC ${
        ms(median(setup.quic))
      }, Atlas ${ms(median(setup.atlas))}); direct ${ms(dm50)}; first relay session ${ms(relaySessionMs)}`,
    );

    // ---- 2. bulk ----
    const relayStatus = async () => (await relay.rpc<Status>({ cmd: "status" })).relay!;
    interface BulkRun {
      mbs: number;
      overall: number;
      cpu: Cpu;
      drops: ReturnType<typeof delta>;
      lossPct: number;
      retransMB: number;
      rtt: number;
      cwndKiB: number;
      pipeDrops: number;
      trace: string[];
      /** Session.close() → done, NaN when still closing after RN.closeWaitMs. */
      closeMs: number;
    }
    // Each relayed bulk run has a dialler node of its own (and its own session to the relay): a
    // relayed session that lost most of its packets can take many seconds to finish closing (its
    // PTO has backed off, see the analysis), and its pipe holds a per-source slot until then.
    const bulkStore = await openStore(join(dialler.dir, "bulk.db"));
    const relayedBulk = async (capBps: number, warmMs: number, winMs: number): Promise<BulkRun> => {
      await relay.rpc({ cmd: "set", transport: { relay_bandwidth_limit: capBps } });
      const n = (await startNodeWith("bench-relay-bulk", false, bulkStore)).node;
      extra.push(n);
      const rs = await deadline(
        n.connectTo({ host: HOST, port: relay.ready.port }, { expectedNodeId: relay.ready.nodeId }),
        RCAP.dial,
        "session to the relay",
      );
      const s0 = await relayStatus();
      const s = await deadline(dialViaRelay(n, relayAddr, agentId), RCAP.dial, "relayed dial");
      const i0 = innerStats(s.conn);
      const b = await timedBulk(n, s, agent, relay, warmMs, winMs);
      const i1 = innerStats(s.conn);
      const c0 = performance.now();
      s.close("bench");
      const closed = await deadline(s.done, RN.closeWaitMs, "close").then(() => true, () => false);
      const closeMs = performance.now() - c0;
      const d = delta(s0, await relayStatus());
      const pipeDrops = rs.conn.dgramDrops;
      await n.close();
      extra.splice(extra.indexOf(n), 1);
      const sent = i1.sent - i0.sent;
      return {
        closeMs: closed ? closeMs : NaN,
        mbs: b.mbs,
        overall: b.overallMbs,
        cpu: b.cpu,
        drops: d,
        lossPct: sent > 0 ? (100 * (i1.lost - i0.lost)) / sent : 0,
        retransMB: i1.retransMB - i0.retransMB,
        rtt: i1.rtt,
        cwndKiB: i1.cwndKiB,
        pipeDrops,
        trace: b.trace,
      };
    };
    // direct and cap off, interleaved
    const directRuns: { mbs: number; cpu: Cpu }[] = [];
    const offRuns: BulkRun[] = [];
    for (let i = 0; i < RN.offRounds; i++) {
      const ds = (await directDial()).s;
      const d = await timedBulk(B, ds, agent, null, RN.directWarmMs, RN.directMs);
      await closeSession(ds);
      directRuns.push({ mbs: d.mbs, cpu: d.cpu });
      api.log(`relay bulk: direct ${mbs(d.mbs)}; ${cpuText(d.cpu)}`);
      const o = await relayedBulk(0, RN.offWarmMs, RN.offMs);
      offRuns.push(o);
      api.log(
        `relay bulk: cap off ${mbs(o.mbs)} (${(o.mbs / d.mbs).toFixed(3)}× direct); relay ${dropsText(o.drops)}; ${
          cpuText(o.cpu)
        }; inner RTT ${o.rtt} ms cwnd ${o.cwndKiB.toFixed(0)} KiB`,
      );
    }
    // cap at its default
    const onRuns: BulkRun[] = [];
    for (let i = 0; i < RN.capRounds; i++) {
      const o = await relayedBulk(DEFAULT_CAP, RN.capWarmMs, RN.capMs);
      onRuns.push(o);
      api.log(
        `relay bulk: cap 1 MiB/s ${mbs(o.mbs)} (${
          (o.mbs / (DEFAULT_CAP / 1e6)).toFixed(3)
        }× cap; whole run incl. burst ${mbs(o.overall)}); inner loss ${o.lossPct.toFixed(0)}%; relay ${
          dropsText(o.drops)
        }; close ${Number.isNaN(o.closeMs) ? "pending" : ms(o.closeMs)}`,
      );
      api.log(
        `relay bulk:   per second, kB read / inner packets sent / declared lost / cwnd KiB / RTT ms: ${
          o.trace.join(" ")
        }`,
      );
    }
    await relay.rpc({ cmd: "set", transport: { relay_bandwidth_limit: DEFAULT_CAP } });
    await bulkStore.close();

    const dMed = median(directRuns.map((x) => x.mbs));
    const offMed = median(offRuns.map((x) => x.mbs));
    const onMed = median(onRuns.map((x) => x.mbs));
    const capRatio = onMed / (DEFAULT_CAP / 1e6);
    const runaway = onRuns.filter((x) => x.lossPct > 80).length;
    const list = (xs: number[], d = 2) => xs.map((x) => x.toFixed(d)).join(", ");
    api.addRow(
      `relay: bulk through the relay${tag}, cap at default (${
        DEFAULT_CAP.toLocaleString("en-US")
      } B/s per direction), goodput over ${RN.capMs / 1000} s after a ${
        RN.capWarmMs / 1000
      } s warm-up, median of ${onRuns.length} runs`,
      `${mbs(onMed)} (${capRatio.toFixed(3)} MiB/s; runs ${list(onRuns.map((x) => x.mbs))})`,
      "",
      "",
      capRatio,
      "cap",
      { op: ">=", value: 0.9 },
    );
    api.addRow(
      `relay: bulk through the relay${tag}, cap off, goodput over ${RN.offMs / 1000} s after ${
        RN.offWarmMs / 1000
      } s, median of ${offRuns.length} — vs direct bulk to the agent (same method, interleaved)`,
      `${mbs(offMed)} (runs ${list(offRuns.map((x) => x.mbs), 1)})`,
      "",
      "",
      offMed / dMed,
      "direct",
      { op: ">=", value: 0.3 },
    );
    api.addRow(
      `relay: ↳ direct bulk, this process → agent, goodput over ${RN.directMs / 1000} s after ${
        RN.directWarmMs / 1000
      } s, median of ${directRuns.length}`,
      `${mbs(dMed)} (runs ${list(directRuns.map((x) => x.mbs), 1)})`,
      "",
      "",
    );
    api.note(
      `relay: bulk with the cap at default, per run: ` +
        onRuns
          .map(
            (o) =>
              `${mbs(o.mbs)} (incl. the 1 s burst ${mbs(o.overall)}), inner QUIC ${
                o.lossPct.toFixed(0)
              }% of packets declared lost, ${o.retransMB.toFixed(1)} MB retransmitted, cwnd ${
                o.cwndKiB.toFixed(0)
              } KiB / RTT ${o.rtt} ms at the end, ` +
              `close ${
                Number.isNaN(o.closeMs) ? `still pending after ${RN.closeWaitMs / 1000} s` : ms(o.closeMs)
              }; relay ${dropsText(o.drops)}`,
          )
          .join("; ") +
        `. ${runaway} of ${onRuns.length} runs in the CUBIC run-away mode (> 80 % loss, see the analysis)`,
    );
    api.note(
      `relay: bulk with the cap off, per run: ` +
        offRuns
          .map((o, i) =>
            `${mbs(o.mbs)} vs direct ${mbs(directRuns[i]!.mbs)}; relay ${
              dropsText(o.drops)
            }; dialler's pipe DATAGRAMs refused by its own quiche queue ${o.pipeDrops}; inner QUIC ${
              o.lossPct.toFixed(1)
            }% lost, RTT ${o.rtt} ms, cwnd ${o.cwndKiB.toFixed(0)} KiB at the end; ${cpuText(o.cpu)}`
          )
          .join("; ") +
        `. Direct runs: ${directRuns.map((d) => cpuText(d.cpu)).join("; ")}`,
    );

    // ---- 3. aggregate: 32 sources, one pipe each, cap off ----
    await relay.rpc({ cmd: "set", transport: { relay_bandwidth_limit: 0 } });
    const aggStore = await openStore(join(dialler.dir, "agg.db"));
    const srcs: AtlasNode[] = [];
    for (let i = 0; i < RN.aggPipes; i++) srcs.push((await startNodeWith("bench-relay-src", false, aggStore)).node);
    extra.push(...srcs);
    const ta = performance.now();
    const pairs: { n: AtlasNode; s: Session }[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: RN.aggDialConcurrency }, async () => {
        while (next < srcs.length && performance.now() - ta < 60_000) {
          const n = srcs[next++]!;
          await deadline(
            n.connectTo({ host: HOST, port: relay.ready.port }, { expectedNodeId: relay.ready.nodeId }),
            RCAP.dial,
            "session to the relay",
          );
          pairs.push({ n, s: await deadline(dialViaRelay(n, relayAddr, agentId), RCAP.dial, "relayed dial") });
        }
      }),
    );
    const dialMs = performance.now() - ta;
    const sessions = pairs.map((p) => p.s);
    const st = await relay.rpc<Status>({ cmd: "status" });
    api.log(
      `relay aggregate: ${sessions.length} relayed sessions from ${srcs.length} sources in ${ms(dialMs)}; relay pipes ${
        st.relay!.pipes
      }`,
    );
    const bulks = await Promise.all(pairs.map((p) => startBulk(p.n, p.s, RN.aggWarmMs + RN.aggMs + 5000)));
    await sleep(RN.aggWarmMs);
    const d0 = selfCpuMs();
    const r0 = await relay.rpc<Status>({ cmd: "status" });
    const g0 = await sample(agent);
    await sleep(RN.aggMs);
    const r1 = await relay.rpc<Status>({ cmd: "status" });
    const g1 = await sample(agent);
    const diallerCpu = (selfCpuMs() - d0) / (g1.t - g0.t);
    await Promise.all(bulks.map((b) => b.stop().catch(() => {})));
    const aggD = delta(r0.relay!, r1.relay!);
    const win = (r1.t - r0.t) / 1000;
    const fwdMBs = aggD.bytes / 1e6 / win;
    const fwdPps = aggD.packets / win;
    const goodput = (g1.bytes - g0.bytes) / 1e6 / ((g1.t - g0.t) / 1000);
    const relayCpu = (r1.cpuMs - r0.cpuMs) / (r1.t - r0.t);
    const agentCpu = (g1.cpuMs - g0.cpuMs) / (g1.t - g0.t);
    const perStream = sessions.length ? goodput / sessions.length : 0;
    api.addRow(
      `relay: aggregate${tag}, ${sessions.length} pipes (${srcs.length} sources → 1 agent) sending at once, cap off: forwarded by the relay over ${
        RN.aggMs / 1000
      } s (packets both directions)`,
      `${mbs(fwdMBs)}, ${Math.round(fwdPps).toLocaleString("en-US")} packets/s`,
      "",
      "",
    );
    api.addRow(
      `relay: ↳ goodput at the agent (sum of ${sessions.length} streams) / relay process CPU over the window`,
      `${mbs(goodput)} (${mbs(perStream)} per pipe) / ${(relayCpu * 100).toFixed(0)}% of a core`,
      "",
      "",
    );
    api.note(
      `relay: aggregate: ${sessions.length} relayed sessions dialled in ${
        ms(dialMs)
      } (${RN.aggDialConcurrency} at a time, each source first opening its own session to the relay); ` +
        `relay ${dropsText(aggD)}; CPU over the window: diallers (this process) ${
          (diallerCpu * 100).toFixed(0)
        }%, relay ${(relayCpu * 100).toFixed(0)}%, agent ${(agentCpu * 100).toFixed(0)}% of one core; ` +
        `relay CPU per forwarded MB ${
          aggD.bytes > 0 ? ((r1.cpuMs - r0.cpuMs) / (aggD.bytes / 1e6)).toFixed(1) : "?"
        } ms, per packet ${aggD.packets > 0 ? (((r1.cpuMs - r0.cpuMs) * 1000) / aggD.packets).toFixed(1) : "?"} µs`,
    );
    api.log(
      `relay aggregate: forwarded ${mbs(fwdMBs)} ${Math.round(fwdPps)} pkt/s; goodput ${mbs(goodput)}; CPU diallers ${
        (diallerCpu * 100).toFixed(0)
      }% relay ${(relayCpu * 100).toFixed(0)}% agent ${(agentCpu * 100).toFixed(0)}%; ${dropsText(aggD)}`,
    );
    await Promise.all(sessions.map((s) => closeSession(s).catch(() => {})));
    await Promise.all(srcs.map((n) => n.close()));
    extra.length = 0;
    await aggStore.close();

    relaySession.close("bench");
    stopping = true;
    await Promise.all([relay.rpc({ cmd: "stop" }, 15_000), agent.rpc({ cmd: "stop" }, 15_000)]);
    api.note(
      `relay: placement ${placement}; relay config: defaults (relay_capacity 64, relay_pipes_per_source 4, 1350-byte outer datagrams, 1200-byte inner packets) with the bench's raised limits; ` +
        `phase ${((performance.now() - t0) / 1000).toFixed(1)} s${
          api.benchOnly ? ` (run alone with BENCH_ONLY, ${new Date().toISOString()})` : ""
        }, load average ${load0} → ${loadavg()[0]!.toFixed(2)}`,
    );
  } finally {
    await Promise.all(extra.map((n) => n.close().catch(() => {})));
    for (const n of nodes) {
      await n.node.close().catch(() => {});
      await n.store.close().catch(() => {});
    }
    // a stopped child exits by itself (and writes its --cpu-prof profile): give it 5 s, then kill
    if (stopping) {
      await Promise.all(children.map((c) => (c.proc.exitCode === null
        ? deadline(
          new Promise((r) => c.proc.once("exit", r)),
          5000,
          "child exit",
        ).catch(() => {})
        : null)
      ));
    }
    kill();
    process.off("exit", kill);
  }
}
