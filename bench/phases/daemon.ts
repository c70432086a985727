/**
 * Daemon phase of `npm run bench` (called by bench/run.ts after the transport phases, or alone with
 * BENCH_ONLY=daemon): real `atlas daemon` processes (the standalone binary dist/atlas, rebuilt with
 * scripts/build.mjs when it is missing or older than src/) with temporary homes on 127.0.0.1.
 *
 * 1. Messages through two daemons: sender A and receiver B. 1 KiB bodies, queued in A's outbox the
 *    way `atlas net send` does with a daemon running (OutboxStore.enqueue on A's state/peers.db,
 *    then the control op `outbox.kick`), delivered by A's outbox worker, stored by B's inbox and
 *    acknowledged with MessageAck. Figures:
 *    - latency, one message at a time: from the start of the enqueue to (a) the row appearing in
 *      B's inbox and (b) the 'delivered' row appearing in A's `deliveries`. `finished_at` and
 *      `received_at` are whole seconds, so this process polls both databases every ~1 ms (its own
 *      libSQL connections, WAL readers) and takes the time it first sees each row (±1 ms);
 *    - throughput: DN.backlog (3000) messages queued in A's outbox before A starts, then drained;
 *      messages/s = (n − 1) / (last − first 'delivered' row seen), polled every 5 ms; the rate of
 *      the first DN.backlogHead (1000) is logged too (a fresh daemon warming up);
 *    - the raw direct path for comparison: an AtlasNode in this process sends Session.request(Message)
 *      to daemon B (same 1 KiB body, B stores it in its inbox before the MessageAck), sequential and
 *      8 in flight.
 * 2. CLI wall time: `atlas net send` against running daemon A vs the same program's `atlas --version`
 *    vs bare `node -e 0`, interleaved rounds, median; standalone binary and bundle; with the
 *    environment as it is and with NODE_EXTRA_CA_CERTS removed.
 * 3. Daemon RSS (/proc/<pid>/status VmRSS): idle after start, and with 500 inbound sessions from
 *    500 AtlasNodes in this process (daemon C, admission limits raised in its config.toml).
 *
 * Daemon config (state/config.toml of every home): network.host 127.0.0.1, stun.servers [] (nothing
 * leaves the machine), outbox.poll_interval_ms 10, [rate_limit.unknown] per_second 10^6,
 * per_minute 10^8, bytes_per_minute 10^12 (the receiver's inbound limits, and the sender's outbox
 * pacing, which is derived from its own rate_limit.unknown); daemon C also transport.max_connections
 * 2000, security.handshake_limit 1000, security.handshakes_per_ip_per_minute 100000.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { cpus, platform } from "node:os";
import { join } from "node:path";
import { newMessageId } from "../../src/net/messaging.ts";
import { type HomePaths, homePaths } from "../../src/config/paths.ts";
import { callDaemon } from "../../src/daemon/control-client.ts";
import { openDatabase } from "../../src/store/db.ts";
import { openStore, type Store } from "../../src/store/index.ts";
import type { Session } from "../../src/net/session.ts";
import type { WireMessage } from "../../src/wire/messages.ts";
import { type BenchNode, deadline, HOST, loop, median, percentile, startNode, startNodeWith } from "../common.ts";
import type { PhaseApi } from "./api.ts";
import { ms, rate } from "./format.ts";

/** Counts and caps of this phase (every loop stops at its count or its cap). */
export const DN = {
  bodyBytes: 1024,
  seq: 200, // outbox, one at a time, with outbox.kick
  seqNoKick: 60, // outbox, one at a time, no kick (the worker's 10 ms poll picks it up)
  // queued before the sender starts, then drained: 3000, since the first ~1000 of a fresh daemon
  // mostly measure its warm-up (the note gives their rate too)
  backlog: 3000,
  backlogHead: 1000,
  directWarmup: 50,
  directSeq: 500,
  directPar: 1000,
  inFlight: 8,
  cliWarmup: 2,
  cliRounds: 21,
  sessions: 500,
  dialConcurrency: 16,
} as const;
const DCAP = { seq: 20_000, backlog: 60_000, direct: 15_000, cli: 90_000, sessions: 60_000 } as const;

const mib = (kib: number) => (kib / 1024).toFixed(1) + " MiB";
const sleep = (t: number) => new Promise((r) => setTimeout(r, t));

const BODY = (() => {
  const wrap = JSON.stringify({ text: "" }).length;
  return JSON.stringify({ text: "x".repeat(DN.bodyBytes - wrap) });
})();

// ---------------------------------------------------------------------------------------------
// programs and environments

export interface Prog {
  label: string;
  cmd: string;
  pre: string[];
}

/** The environment of every child: NODE_OPTIONS cleared (the bench itself may run under tsx). */
function childEnv(unsetCa = false): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_OPTIONS: "" };
  if (unsetCa) delete env.NODE_EXTRA_CA_CERTS;
  return env;
}

/** Newest mtime of the sources the binary is built from. */
function newestSource(root: string): number {
  let newest = 0;
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else newest = Math.max(newest, statSync(p).mtimeMs);
    }
  };
  walk(join(root, "src"));
  for (const f of ["cli.ts", "package.json"]) {
    if (existsSync(join(root, f))) newest = Math.max(newest, statSync(join(root, f)).mtimeMs);
  }
  return newest;
}

/** dist/atlas, built (≈ 6 s) when missing or older than src/; null when the build fails. */
function ensureBinary(api: PhaseApi): { path: string; built: string } | null {
  const bin = join(api.root, "dist", "atlas");
  const exists = existsSync(bin);
  if (exists && statSync(bin).mtimeMs >= newestSource(api.root)) {
    return { path: bin, built: "existing dist/atlas (newer than every file in src/)" };
  }
  const why = exists ? "older than src/" : "missing";
  api.log(`daemon: dist/atlas is ${why}: node scripts/build.mjs`);
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [join(api.root, "scripts", "build.mjs")], {
    cwd: api.root,
    env: childEnv(),
    encoding: "utf8",
    timeout: 180_000,
  });
  if (r.status !== 0 || !existsSync(bin)) {
    const text = `${r.stderr ?? ""}\n${r.stdout ?? ""}`;
    const why2 = (text.split("\n").find((l) =>
      /\[ERROR\]|error/i.test(l)
    ) ?? String(r.error ?? text.trim().split("\n").pop())).replace(/^[\s✘]+/, "").trim();
    if (exists) {
      const at = new Date(statSync(bin).mtimeMs).toISOString();
      api.note(
        `daemon phase: rebuilding dist/atlas failed (${why2}); the figures labelled "binary" are from the existing dist/atlas built ${at}, older than the current src/`,
      );
      return { path: bin, built: `existing dist/atlas of ${at} (stale: the rebuild failed)` };
    }
    api.note(`daemon phase: building dist/atlas failed (${why2}); daemons ran from the bundle, no binary figures`);
    return null;
  }
  return {
    path: bin,
    built: `dist/atlas was ${why}: rebuilt by this run (node scripts/build.mjs, ${
      ((performance.now() - t0) / 1000).toFixed(1)
    } s)`,
  };
}

// ---------------------------------------------------------------------------------------------
// homes and daemons

function configToml(manyConns: boolean): string {
  return [
    "# written by bench/phases/daemon.ts",
    "[network]",
    'host = "127.0.0.1"',
    "",
    "[stun]",
    "servers = []",
    "",
    "[outbox]",
    "poll_interval_ms = 10",
    "",
    "[rate_limit.unknown]",
    "per_second = 1000000",
    "per_minute = 100000000",
    "bytes_per_minute = 1000000000000",
    ...(manyConns
      ? [
        "",
        "[transport]",
        "max_connections = 2000",
        "",
        "[security]",
        "handshake_limit = 1000",
        "handshakes_per_ip_per_minute = 100000",
      ]
      : []),
    "",
  ].join("\n");
}

export async function makeHome(api: PhaseApi, prog: Prog, name: string, manyConns = false): Promise<HomePaths> {
  const home = await mkdtemp(join(api.benchRoot, `d${name}-`));
  const r = spawnSync(prog.cmd, [...prog.pre, "--home", home, "id", "init", "--name", name, "--json"], {
    env: childEnv(),
    encoding: "utf8",
    timeout: 30_000,
  });
  if (r.status !== 0) throw new Error(`atlas id init failed (${r.status}): ${r.stderr}`);
  const p = homePaths(home);
  await mkdir(p.stateDir, { recursive: true, mode: 0o700 });
  await writeFile(p.configFile, configToml(manyConns), { mode: 0o600 });
  return p;
}

export interface Daemon {
  name: string;
  paths: HomePaths;
  proc: ChildProcess;
  pid: number;
  nodeId: string;
  port: number;
  /** Canonical send target `atlas_<id>@127.0.0.1:<port>`. */
  target: string;
  startMs: number;
  stderr: () => string;
  /** Log lines at level warn or error so far. */
  warnings: () => string[];
  exited: Promise<number | null>;
}

const live = new Set<ChildProcess>();
process.on("exit", () => {
  for (const p of live) if (p.exitCode === null) p.kill("SIGKILL");
});

export function startDaemon(prog: Prog, name: string, paths: HomePaths): Promise<Daemon> {
  const t0 = performance.now();
  const p = spawn(prog.cmd, [...prog.pre, "--home", paths.home, "daemon", "--host", HOST, "--port", "0", "--json"], {
    env: childEnv(),
    stdio: ["ignore", "pipe", "pipe"],
  });
  live.add(p);
  let out = "";
  let err = "";
  const warns: string[] = [];
  let partial = "";
  p.stderr!.setEncoding("utf8");
  p.stderr!.on("data", (d: string) => {
    err = (err + d).slice(-64 * 1024);
    const lines = (partial + d).split("\n");
    partial = lines.pop() ?? "";
    for (const l of lines) if (/^\S+\s+(warn|error)\b/.test(l) && warns.length < 50) warns.push(l);
  });
  const exited = new Promise<number | null>((r) => p.on("close", (c) => (live.delete(p), r(c))));
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`daemon ${name} did not start within 15 s: ${err}`)), 15_000);
    p.stdout!.setEncoding("utf8");
    p.stdout!.on("data", (d: string) => {
      out += d;
      const nl = out.indexOf("\n");
      if (nl < 0) return;
      clearTimeout(t);
      const j = JSON.parse(out.slice(0, nl)) as { node_id: string; address: string; pid: number };
      const port = Number(String(j.address).split(":").pop());
      resolve({
        name,
        paths,
        proc: p,
        pid: p.pid!,
        nodeId: j.node_id,
        port,
        target: `${j.node_id}@${HOST}:${port}`,
        startMs: performance.now() - t0,
        stderr: () => err,
        warnings: () => warns,
        exited,
      });
    });
    void exited.then((c) => reject(new Error(`daemon ${name} exited with ${c}: ${err}`)));
  });
}

/** SIGTERM; docs/architecture.md#daemon: exit 0 within 5 s. Returns a problem description, or null. */
export async function stopDaemon(d: Daemon): Promise<string | null> {
  if (d.proc.exitCode !== null) return `daemon ${d.name} had already exited with ${d.proc.exitCode}`;
  const t0 = performance.now();
  d.proc.kill("SIGTERM");
  const code = await Promise.race([d.exited, sleep(6000).then(() => "timeout" as const)]);
  const t = performance.now() - t0;
  if (code === "timeout") {
    d.proc.kill("SIGKILL");
    return `daemon ${d.name} did not exit within 6 s of SIGTERM`;
  }
  if (code !== 0) return `daemon ${d.name} exited with ${code} after SIGTERM (${ms(t)})`;
  return null;
}

/** VmRSS and its anonymous / file-backed parts (KiB) from /proc/<pid>/status. */
function procMem(pid: number): { rss: number; anon: number; file: number } {
  const st = readFileSync(`/proc/${pid}/status`, "utf8");
  const get = (k: string) => {
    const m = new RegExp(`^${k}:\\s+(\\d+)\\s+kB`, "m").exec(st);
    if (!m) throw new Error(`no ${k} in /proc/${pid}/status`);
    return Number(m[1]);
  };
  return { rss: get("VmRSS"), anon: get("RssAnon"), file: get("RssFile") };
}

/** procMem once VmRSS has settled: sampled every 250 ms (from `minMs` on) until it moved < 1 % over the last 1 s, or `capMs`. */
async function settledMem(
  pid: number,
  minMs = 1000,
  capMs = 6000,
): Promise<{ rss: number; anon: number; file: number }> {
  const t0 = performance.now();
  await sleep(minMs);
  const samples: number[] = [];
  for (;;) {
    const m = procMem(pid);
    samples.push(m.rss);
    const n = samples.length;
    if (n >= 5 && Math.abs(samples[n - 1]! - samples[n - 5]!) < 0.01 * samples[n - 1]!) return m;
    if (performance.now() - t0 > capMs) return m;
    await sleep(250);
  }
}

const memText = (m: { rss: number; anon: number; file: number }) =>
  `${mib(m.rss)} (anon ${mib(m.anon)}, file ${mib(m.file)})`;

// ---------------------------------------------------------------------------------------------
// helpers

const msgId = newMessageId;
const unix = () => Math.floor(Date.now() / 1000);

function enqueue(store: Store, target: string, id = msgId()): Promise<void> {
  const now = unix();
  return store.outbox.enqueue({
    id,
    target,
    topic: null,
    reply_to: null,
    body: BODY,
    created_at: now,
    expires_at: now + 86_400,
  });
}

// ---------------------------------------------------------------------------------------------
// 1. messages through two daemons

interface OutboxLatency {
  stored: number[];
  delivered: number[];
  enqueue: number[];
  capped: boolean;
}

/**
 * One message at a time: enqueue (+ kick) and poll, every ~1 ms, B's inbox (rows after the last
 * seen seq) and A's deliveries (this msg_id) until the 'delivered' row is visible.
 */
async function outboxSequential(
  a: Daemon,
  aStore: Store,
  bStore: Store,
  b: Daemon,
  count: number,
  kick: boolean,
): Promise<OutboxLatency> {
  const res: OutboxLatency = { stored: [], delivered: [], enqueue: [], capped: false };
  let seq = (await bStore.inbox.list({ limit: 1 }))[0]?.rowid ?? 0;
  const t00 = performance.now();
  for (let i = 0; i < count; i++) {
    if (performance.now() - t00 > DCAP.seq) {
      res.capped = true;
      break;
    }
    const id = msgId();
    const t0 = performance.now();
    await enqueue(aStore, b.target, id);
    res.enqueue.push(performance.now() - t0);
    if (kick) await callDaemon(a.paths, "outbox.kick", {}, 2000);
    let stored = -1;
    for (;;) {
      const now = performance.now();
      if (now - t0 > 10_000) {
        throw new Error(`outbox message ${id} not delivered within 10 s; daemon A stderr: ${a.stderr().slice(-2000)}`);
      }
      if (stored < 0) {
        const rows = await bStore.inbox.list({ sinceRowid: seq, limit: 4 });
        for (const r of rows) {
          seq = Math.max(seq, r.rowid);
          if (r.id === id) stored = performance.now() - t0;
        }
      }
      const d = (await aStore.deliveries.list({ msgId: id, limit: 1 }))[0];
      if (d) {
        if (d.status !== "delivered") throw new Error(`outbox message ${id}: ${d.status} (${d.detail})`);
        const t = performance.now() - t0;
        res.delivered.push(t);
        res.stored.push(stored < 0 ? t : stored);
        break;
      }
      await sleep(1);
    }
  }
  return res;
}

// ---------------------------------------------------------------------------------------------

export async function daemonPhase(api: PhaseApi): Promise<void> {
  const problems: string[] = [];
  const bundle: Prog = { label: "bundle", cmd: process.execPath, pre: [join(api.root, "dist", "atlas.mjs")] };
  if (!existsSync(bundle.pre[0]!)) {
    throw new Error("dist/atlas.mjs is missing: run node scripts/bundle.mjs (npm run bench does)");
  }
  // BENCH_DAEMON_CPU_PROF=DIR: the daemons run from the bundle under `node --cpu-prof` into DIR.
  const profDir = process.env.BENCH_DAEMON_CPU_PROF;
  const built = profDir ? null : ensureBinary(api);
  const binary: Prog | null = built ? { label: "binary", cmd: built.path, pre: [] } : null;
  const prog = profDir
    ? { ...bundle, label: "bundle under --cpu-prof", pre: ["--cpu-prof", `--cpu-prof-dir=${profDir}`, ...bundle.pre] }
    : binary ?? bundle;

  // Placement: this process was pinned to CPU 0 by run.ts; children inherit that, so unpin it
  // first; then sender → CPU 0, receiver → CPU 1 (as client/server in the other phases).
  const ncpu = cpus().length;
  let placement = "scheduler's choice (not pinned)";
  if (api.pinning && platform() === "linux" && ncpu >= 2) api.pin(process.pid, `0-${ncpu - 1}`);

  const homeA = await makeHome(api, prog, "sender");
  const homeB = await makeHome(api, prog, "receiver");
  const b = await startDaemon(prog, "B", homeB);
  const daemons: Daemon[] = [b];
  let client: BenchNode | null = null;
  let aStore: Store | null = null;
  let bStore: Store | null = null;
  const memNodes: BenchNode["node"][] = [];
  let memStore: Store | null = null;
  try {
    const pinned = api.pinning && platform() === "linux" && ncpu >= 2 && api.pin(b.pid, "1");
    api.log(`daemon: receiver B pid ${b.pid} on udp/${b.port} (${prog.label}, started in ${ms(b.startMs)})`);

    // ---- backlog: queued in A's outbox before A starts --------------------------------------
    aStore = await openStore(homeA.dbFile);
    const te0 = performance.now();
    const backlogIds: string[] = [];
    for (let i = 0; i < DN.backlog && performance.now() - te0 < 30_000; i++) {
      const id = msgId();
      backlogIds.push(id);
      await enqueue(aStore, b.target, id);
    }
    const enqueueMs = (performance.now() - te0) / backlogIds.length;
    const memB = await settledMem(b.pid, 0); // B has been idle since its start (≥ the enqueue time)
    const a = await startDaemon(prog, "A", homeA);
    daemons.push(a);
    if (pinned && api.pin(a.pid, "0")) {
      placement =
        "sender daemon A pinned to CPU 0, receiver daemon B to CPU 1, this process (poller / CLI launcher / direct client) not pinned";
    }
    api.log(
      `daemon: sender A pid ${a.pid} (started in ${ms(a.startMs)}); draining ${backlogIds.length} queued messages`,
    );
    const aDb = await openDatabase(homeA.dbFile);
    let first = -1;
    let last = -1;
    let headAt = -1; // when DN.backlogHead had been delivered
    let done = 0;
    const tb0 = performance.now();
    try {
      while (done < backlogIds.length) {
        if (performance.now() - tb0 > DCAP.backlog) break;
        const r = await aDb.rows("SELECT count(*) AS n FROM deliveries WHERE status = 'delivered'");
        const n = Number(r[0]!.n);
        const now = performance.now();
        if (n > 0 && first < 0) first = now;
        if (n > done) last = now;
        if (n >= DN.backlogHead && headAt < 0) headAt = now;
        done = n;
        if (done < backlogIds.length) await sleep(5);
      }
      const failed = Number((await aDb.rows("SELECT count(*) AS n FROM deliveries WHERE status <> 'delivered'"))[0]!.n);
      if (failed > 0) problems.push(`${failed} backlog messages ended not 'delivered'`);
    } finally {
      await aDb.close();
    }
    bStore = await openStore(homeB.dbFile);
    const stored = (await bStore.inbox.list({ limit: 100_000 })).length;
    const drainRate = done > 1 ? (done - 1) / ((last - first) / 1000) : 0;
    const headRate = headAt > first ? (DN.backlogHead - 1) / ((headAt - first) / 1000) : 0;
    const drainCapped = done < backlogIds.length;
    if (stored !== done) problems.push(`receiver inbox holds ${stored} messages, sender recorded ${done} delivered`);
    api.log(
      `daemon: backlog ${done}/${backlogIds.length} delivered at ${rate(drainRate)} (the first ${DN.backlogHead} at ${
        rate(headRate)
      }; first after ${ms(first - tb0)})`,
    );

    // ---- one at a time ----------------------------------------------------------------------
    await outboxSequential(a, aStore, bStore, b, 10, true); // warm-up
    const seq = await outboxSequential(a, aStore, bStore, b, DN.seq, true);
    const noKick = await outboxSequential(a, aStore, bStore, b, DN.seqNoKick, false);
    api.log(
      `daemon: outbox one at a time: delivered p50 ${ms(median(seq.delivered))} p99 ${
        ms(percentile(seq.delivered, 99))
      }, stored p50 ${ms(median(seq.stored))}`,
    );

    // ---- direct path: AtlasNode in this process → daemon B ----------------------------------
    client = await startNode("bench-direct", false, api.benchRoot);
    const s: Session = await client.node.connectTo({ host: HOST, port: b.port });
    const self = client.node.nodeId;
    const direct = async () => {
      const m: WireMessage = { type: "Message", id: msgId(), from: self, to: b.nodeId, timestamp: unix(), body: BODY };
      const res = await s.request(m, 10_000);
      if (res.type !== "MessageAck" || res.status !== "received") throw new Error(`direct: unexpected ${res.type}`);
    };
    await loop(DN.directWarmup, 1, DCAP.direct, direct);
    const dSeq = await loop(DN.directSeq, 1, DCAP.direct, direct);
    const dPar = await loop(DN.directPar, DN.inFlight, DCAP.direct, direct);
    s.close("bench");
    await s.done;
    await client.node.close();
    const dSeqRate = dSeq.n / (dSeq.ms / 1000);
    const dParRate = dPar.n / (dPar.ms / 1000);
    api.log(
      `daemon: direct to B: ${rate(dSeqRate)} sequential (p50 ${ms(median(dSeq.lat))}), ${
        rate(dParRate)
      } with ${DN.inFlight} in flight`,
    );

    const seqRate = seq.delivered.length / (seq.delivered.reduce((x, y) => x + y, 0) / 1000);
    api.addRow(
      `daemon→daemon 1 KiB via outbox, backlog of ${backlogIds.length} drained (${done}${
        drainCapped ? `, capped at ${DCAP.backlog / 1000} s` : ""
      }) — vs direct ${DN.inFlight} in flight`,
      rate(drainRate),
      "",
      "",
      drainRate / dParRate,
      "direct",
    );
    api.addRow(
      `daemon→daemon 1 KiB via outbox, one at a time (${seq.delivered.length}${
        seq.capped ? ", capped" : ""
      }): enqueue → 'delivered', p50 / p99 — vs direct sequential`,
      `${ms(median(seq.delivered))} / ${ms(percentile(seq.delivered, 99))}`,
      "",
      "",
      median(seq.delivered) / median(dSeq.lat),
      "direct (p50)",
    );
    api.addRow(
      `↳ enqueue → stored in receiver's inbox, p50 / p99`,
      `${ms(median(seq.stored))} / ${ms(percentile(seq.stored, 99))}`,
      "",
      "",
      undefined,
    );
    api.addRow(
      `direct: AtlasNode → daemon B, Session.request(Message 1 KiB), sequential (${dSeq.n}${
        dSeq.capped ? ", capped" : ""
      }), p50 / p99`,
      `${rate(dSeqRate)}, ${ms(median(dSeq.lat))} / ${ms(percentile(dSeq.lat, 99))}`,
      "",
      "",
      undefined,
    );
    api.addRow(
      `direct: AtlasNode → daemon B, ${DN.inFlight} in flight (${dPar.n}${dPar.capped ? ", capped" : ""}), p50 / p99`,
      `${rate(dParRate)}, ${ms(median(dPar.lat))} / ${ms(percentile(dPar.lat, 99))}`,
      "",
      "",
      undefined,
    );
    api.note(
      `daemon messaging (${prog.label} daemons; ${placement}): backlog of ${backlogIds.length} queued before A started (enqueue ${
        ms(enqueueMs)
      } per message from this process, each its own commit), ` +
        `first delivered ${ms(first - tb0)} after polling began, ${done} delivered (the first ${DN.backlogHead} at ${
          rate(headRate)
        }: a fresh daemon's warm-up), ${stored} rows in B's inbox; one at a time with outbox.kick: ${
          rate(seqRate)
        } (1 / mean latency), enqueue commit p50 ${ms(median(seq.enqueue))}, ` +
        `enqueue → stored p50 ${ms(median(seq.stored))}, → 'delivered' p50 ${ms(median(seq.delivered))} p99 ${
          ms(percentile(seq.delivered, 99))
        }; ` +
        `without kick (worker poll every 10 ms, ${noKick.delivered.length} messages): → 'delivered' p50 ${
          ms(median(noKick.delivered))
        } p99 ${ms(percentile(noKick.delivered, 99))}; ` +
        `direct path to daemon B: sequential p50 ${ms(median(dSeq.lat))}, ${DN.inFlight} in flight p50 ${
          ms(median(dPar.lat))
        } p99 ${ms(percentile(dPar.lat, 99))}`,
    );

    // BENCH_DAEMON_MESSAGING_ONLY=1: stop after the messaging figures (A/B runs of the outbox).
    if (process.env.BENCH_DAEMON_MESSAGING_ONLY) return;

    // ---- 2. CLI wall time ---------------------------------------------------------------------
    await cliPhase(api, a, b, binary, bundle);

    // ---- 3. memory ------------------------------------------------------------------------------
    const homeC = await makeHome(api, prog, "mem", true);
    const c = await startDaemon(prog, "C", homeC);
    daemons.push(c);
    const memC0 = await settledMem(c.pid, 2000);
    const memA = procMem(a.pid);
    memStore = await openStore(join(await mkdtemp(join(api.benchRoot, "dmem-")), "peers.db"));
    const t0 = performance.now();
    const want = DN.sessions;
    let made = 0;
    await Promise.all(
      Array.from({ length: DN.dialConcurrency }, async () => {
        while (made < want && performance.now() - t0 < DCAP.sessions) {
          made++;
          const n =
            (await deadline(startNodeWith("bench-dmem", false, memStore!), 15_000, "starting a client node")).node;
          memNodes.push(n);
          await deadline(n.connectTo({ host: HOST, port: c.port }), 15_000, "opening a session to daemon C");
        }
      }),
    );
    const openMs = performance.now() - t0;
    let seen = 0;
    const tw = performance.now();
    while (performance.now() - tw < 15_000) {
      seen = (await callDaemon<{ sessions: unknown[] }>(c.paths, "status", {}, 10_000)).sessions.length;
      if (seen >= memNodes.length) break;
      await sleep(200);
    }
    const memC1 = await settledMem(c.pid, 1000);
    const per = (memC1.rss - memC0.rss) / Math.max(1, seen);
    // reference: an idle `node` process (same node as the binary embeds), same environment
    const ref = spawn(process.execPath, ["-e", "setInterval(() => {}, 1e6)"], { env: childEnv(), stdio: "ignore" });
    live.add(ref);
    const memNode = await settledMem(ref.pid!, 1000, 3000);
    ref.kill("SIGKILL");
    live.delete(ref);
    api.addRow(
      `daemon RSS idle (after start, settled), ${prog.label} — vs an idle \`node\` process`,
      mib(memC0.rss),
      "",
      "",
      memC0.rss / memNode.rss,
      "idle node",
    );
    api.addRow(
      `daemon RSS with ${seen} inbound sessions (Δ / session; no forced GC)`,
      `${mib(memC1.rss)} (${per.toFixed(1)} KiB)`,
      "",
      "",
      undefined,
    );
    api.note(
      `daemon memory (VmRSS from /proc/<pid>/status, settled = stable within 1 % over 1 s): daemon C idle ${
        memText(memC0)
      }, receiver B idle ${memText(memB)}, an idle \`node -e\` ${memText(memNode)}, ` +
        `sender A after the messaging and CLI runs ${
          memText(memA)
        }; ${seen} sessions (daemon's \`status\`) from ${memNodes.length} AtlasNodes in this process, ${DN.dialConcurrency} dials at a time, opened in ${
          ms(openMs)
        } ` +
        `(${(seen / (openMs / 1000)).toFixed(0)}/s): ${
          memText(memC1)
        }. Daemon C's config.toml raises transport.max_connections 200→2000, security.handshake_limit 50→1000 and ` +
        `security.handshakes_per_ip_per_minute 30→100000 (500 connections from 127.0.0.1 trip the defaults); daemons A/B/C run with the environment as is (NODE_EXTRA_CA_CERTS ${
          process.env.NODE_EXTRA_CA_CERTS ? "set" : "unset"
        })`,
    );
    api.log(
      `daemon: RSS idle ${mib(memC0.rss)}, with ${seen} sessions ${mib(memC1.rss)} (${per.toFixed(1)} KiB/session)`,
    );
    await Promise.all(memNodes.splice(0).map((n) => n.close().catch(() => {})));
  } finally {
    await Promise.all(memNodes.splice(0).map((n) => n.close().catch(() => {})));
    if (client) await client.store.close().catch(() => {});
    await memStore?.close().catch(() => {});
    await aStore?.close().catch(() => {});
    await bStore?.close().catch(() => {});
    for (const d of daemons) {
      const p = await stopDaemon(d);
      if (p) problems.push(p);
      const w = d.warnings();
      if (w.length) {
        problems.push(
          `daemon ${d.name} logged ${w.length}${w.length >= 50 ? "+" : ""} warnings/errors, first: ${
            w[0]!.slice(0, 300)
          }`,
        );
      }
    }
  }
  if (built) api.note(`daemon binary: ${built.built}`);
  for (const p of problems) api.note(`daemon phase problem: ${p}`);
}

// ---------------------------------------------------------------------------------------------
// 2. CLI wall time

async function cliPhase(api: PhaseApi, a: Daemon, b: Daemon, binary: Prog | null, bundle: Prog): Promise<void> {
  const hasCa = process.env.NODE_EXTRA_CA_CERTS !== undefined;
  const envs = hasCa ? [false, true] : [false];
  const progs = binary ? [binary, bundle] : [bundle];
  // spawn overhead of this (large) process: /bin/true
  const timeRun = (cmd: string, args: string[], env: NodeJS.ProcessEnv, check?: (out: string) => boolean): number => {
    const t0 = performance.now();
    const r = spawnSync(cmd, args, { env, encoding: "utf8", timeout: 30_000, stdio: ["ignore", "pipe", "pipe"] });
    const t = performance.now() - t0;
    if (r.status !== 0 || (check && !check(r.stdout))) {
      throw new Error(`${cmd} ${args.join(" ").slice(0, 200)} failed (${r.status}): ${r.stderr || r.stdout}`);
    }
    return t;
  };
  const sendArgs = (
    p: Prog,
    i: number,
  ) => [...p.pre, "--home", a.paths.home, "net", "send", b.target, `{"bench":${i}}`];
  const isQueued = (out: string) => out.startsWith("Queued");
  type Key = string;
  const times = new Map<Key, number[]>();
  const push = (k: Key, t: number) => (times.get(k) ?? times.set(k, []).get(k)!).push(t);
  const t00 = performance.now();
  let rounds = 0;
  let capped = false;
  for (let round = 0; round < DN.cliWarmup + DN.cliRounds; round++) {
    if (performance.now() - t00 > DCAP.cli) {
      capped = true;
      break;
    }
    const warm = round < DN.cliWarmup;
    for (const unset of envs) {
      const env = childEnv(unset);
      const ek = unset ? "noca" : "env";
      // rotate the order every round so no command always runs first
      const jobs: [Key, () => number][] = [
        [`${ek}/node`, () => timeRun(process.execPath, ["-e", "0"], env)],
        [`${ek}/true`, () => timeRun("/bin/true", [], env)],
      ];
      for (const p of progs) {
        jobs.push([
          `${ek}/${p.label}/version`,
          () => timeRun(p.cmd, [...p.pre, "--version"], env, (o) => o.startsWith("atlas ")),
        ]);
        jobs.push([`${ek}/${p.label}/send`, () => timeRun(p.cmd, sendArgs(p, round), env, isQueued)]);
      }
      for (let j = 0; j < jobs.length; j++) {
        const [k, f] = jobs[(j + round) % jobs.length]!;
        const t = f();
        if (!warm) push(k, t);
        await sleep(k.endsWith("/send") ? 40 : 10); // let the daemons deliver the message before the next start
      }
    }
    if (!warm) rounds++;
  }
  const m = (k: Key) => median(times.get(k) ?? []);
  for (const unset of envs) {
    const ek = unset ? "noca" : "env";
    const tag = unset ? "NODE_EXTRA_CA_CERTS unset" : hasCa ? "env as is (NODE_EXTRA_CA_CERTS set)" : "env as is";
    for (const p of progs) {
      const v = m(`${ek}/${p.label}/version`);
      const s = m(`${ek}/${p.label}/send`);
      const n = m(`${ek}/node`);
      const name = p.label === "binary" ? "dist/atlas" : "node dist/atlas.mjs";
      api.addRow(
        `\`${name} net send\` (daemon running) wall time, ${tag}, median of ${rounds}${capped ? " (capped)" : ""}`,
        ms(s),
        "",
        "",
        s / v,
        "--version",
        { op: "<=", value: 1.25 },
      );
      api.addRow(`\`${name} --version\` wall time, ${tag}, median of ${rounds}`, ms(v), "", "", v / n, "`node -e 0`", {
        op: "<=",
        value: 2,
      });
    }
    api.addRow(`bare \`node -e 0\` wall time, ${tag}, median of ${rounds}`, ms(m(`${ek}/node`)), "", "", undefined);
  }
  const ca = hasCa
    ? `; NODE_EXTRA_CA_CERTS costs ${ms(m("env/node") - m("noca/node"))} per \`node -e 0\` start, ${
      binary ? ms(m("env/binary/version") - m("noca/binary/version")) + " per binary --version" : ""
    }`
    : "";
  api.note(
    `CLI wall time: spawnSync from this process until exit, ${DN.cliWarmup} warm-up + ${rounds} interleaved rounds (order rotated each round), 40 ms pause after each send; ` +
      `spawning /bin/true from this process takes ${ms(m("env/true"))} (included in every figure)${ca}; p90: ` +
      progs.map((p) =>
        `${p.label} send ${ms(percentile(times.get(`env/${p.label}/send`) ?? [], 90))}, --version ${
          ms(percentile(times.get(`env/${p.label}/version`) ?? [], 90))
        }`
      ).join("; ") +
      `; node -e 0 ${ms(percentile(times.get("env/node") ?? [], 90))}`,
  );
  api.log(
    `daemon: CLI medians: ` +
      [...times.keys()].filter((k) => !k.endsWith("/true")).map((k) => `${k} ${ms(m(k))}`).join(", "),
  );
}
