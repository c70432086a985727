/**
 * js-libp2p phase: the same connect, round-trip and request figures measured with js-libp2p over
 * QUIC (`@chainsafe/libp2p-quic`, quinn in Rust threads), printed in a "js-libp2p QUIC" column
 * beside Atlas's rows. js-libp2p is not a dependency of Atlas: it lives in bench/peers/ with its
 * own package.json and lockfile, installed on demand —
 *   npm install --prefix bench/peers
 * — never by the root package or CI. Without bench/peers/node_modules this phase is skipped and
 * the column left out. Two processes, placed like Atlas's pair: the client on CPU 0, the server
 * on CPU 1 (bench/peers/libp2p.mjs).
 *
 * Then relayed bulk beside the relay phase's cap-off row: three more processes (a circuit-relay-v2
 * relay without reservation limits, a listener with a reservation on it, a dialer), placed like
 * the relay phase's (BENCH_RELAY_PIN, default dialer CPU 0, relay + listener CPU 1), measured with
 * its constants (RN): goodput read by the listener over the window after the warm-up, direct runs
 * to the same listener interleaved. If that part fails only its figures are left out.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { cpus, platform } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { deadline, median, N } from "../common.ts";
import { addPeerFigure } from "../results.ts";
import type { PhaseApi } from "./api.ts";
import { kb, ms, rate } from "./format.ts";
import { mbs, relayLayout, relayTag, RN } from "./relay.ts";

interface PeerResults {
  connect: { median: number; n: number };
  rtt: { median: number; n: number };
  reqSeq: { perSecond: number; n: number };
  reqPar: { perSecond: number; n: number; inFlight: number };
  bulk: { median: number; rounds: number[]; bytes: number };
  idle: { n: number; openMs: number };
}

/** One JSON line at a time from a child's stdout. */
function jsonLines(child: ChildProcess): () => Promise<Record<string, unknown>> {
  const queue: Record<string, unknown>[] = [];
  const waiters: ((v: Record<string, unknown>) => void)[] = [];
  createInterface({ input: child.stdout! }).on("line", (l) => {
    let v: Record<string, unknown>;
    try {
      v = JSON.parse(l) as Record<string, unknown>;
    } catch {
      return;
    }
    const w = waiters.shift();
    if (w) w(v);
    else queue.push(v);
  });
  return () => {
    const v = queue.shift();
    return v ? Promise.resolve(v) : new Promise((r) => waiters.push(r));
  };
}

/** Whether bench/peers has js-libp2p installed. */
export function libp2pInstalled(root: string): boolean {
  const nm = join(root, "bench", "peers", "node_modules");
  return existsSync(join(nm, "libp2p")) && existsSync(join(nm, "@chainsafe", "libp2p-quic"));
}

/** Run before the transport phases, so that their rows pick up the column (`tag` as theirs). */
export async function libp2pPhase(api: PhaseApi, tag: string): Promise<void> {
  if (!libp2pInstalled(api.root)) {
    api.log("libp2p: bench/peers not installed (npm install --prefix bench/peers): column skipped");
    return;
  }
  const script = join(api.root, "bench", "peers", "libp2p.mjs");
  const env = { ...process.env, NODE_OPTIONS: "" };
  const server = spawn(process.execPath, ["--expose-gc", script, "server"], {
    env,
    stdio: ["pipe", "pipe", "pipe"],
  });
  let err = "";
  server.stderr!.on("data", (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
  const fromServer = jsonLines(server);
  const serverRss = async () => {
    server.stdin!.write("mem\n");
    return (await deadline(fromServer(), 10_000, "libp2p server memory")).rss as number;
  };
  try {
    const addr = await new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`libp2p server did not start: ${err}`)), 20_000);
      void fromServer().then((l) => {
        clearTimeout(t);
        resolve(l.addr as string);
      });
      server.once("exit", (c) => reject(new Error(`libp2p server exited with ${c}: ${err}`)));
    });
    if (api.pinning) api.pin(server.pid!, "1");
    const params = {
      connect: N.connect,
      connectWarmup: N.connectWarmup,
      ping: N.ping,
      pingWarmup: N.pingWarmup,
      reqWarmup: N.reqWarmup,
      reqSeq: N.reqSeq,
      reqPar: N.reqParallel,
      inFlight: N.inFlight,
      bulkBytes: N.bulkBytes,
      bulkRounds: N.bulkRounds,
      bulkChunk: N.bulkChunk,
      idleConns: N.idleConns,
      idleConcurrency: N.idleConcurrency,
    };
    const client = spawn(process.execPath, [script, "client", addr, JSON.stringify(params)], {
      env,
      stdio: ["pipe", "pipe", "pipe"],
    });
    if (api.pinning) api.pin(client.pid!, "0");
    let cerr = "";
    client.stderr!.on("data", (d: Buffer) => (cerr = (cerr + d.toString()).slice(-4000)));
    const exited = new Promise<number | null>((r) => client.on("exit", r));
    const fromClient = jsonLines(client);
    const next = () =>
      Promise.race([
        fromClient(),
        exited.then((c) => Promise.reject(new Error(`libp2p client exited with ${c}: ${cerr.trim()}`))),
      ]);
    // Idle connections: the server's RSS before and after (the client waits for a line each time).
    let line = await next();
    if (line.idle !== "before") throw new Error(`libp2p client: unexpected ${JSON.stringify(line)}`);
    const rss0 = await serverRss();
    client.stdin!.write("go\n");
    line = await next();
    if (line.idle !== "open") throw new Error(`libp2p client: unexpected ${JSON.stringify(line)}`);
    await new Promise((r) => setTimeout(r, 200));
    const rss1 = await serverRss();
    client.stdin!.write("go\n");
    const r = (await next()) as unknown as PeerResults;
    const code = await exited;
    if (code !== 0) throw new Error(`libp2p client exited with ${code}: ${cerr.trim()}`);
    const perConn = (rss1 - rss0) / Math.max(1, r.idle.n);
    addPeerFigure("connect + Atlas handshake", r.connect.median, ms(r.connect.median));
    addPeerFigure(`round trip${tag}, median`, r.rtt.median, ms(r.rtt.median));
    addPeerFigure(`1 KiB request/response${tag}, sequential`, r.reqSeq.perSecond, rate(r.reqSeq.perSecond));
    addPeerFigure(
      `1 KiB request/response${tag}, ${N.inFlight} in flight`,
      r.reqPar.perSecond,
      rate(r.reqPar.perSecond),
    );
    addPeerFigure("bulk, 1 stream", r.bulk.median, `${r.bulk.median.toFixed(1)} MB/s`);
    addPeerFigure("idle connection: server RSS Δ / conn", perConn / 1024, kb(perConn));
    api.note(
      `js-libp2p column: js-libp2p + @chainsafe/libp2p-quic from bench/peers (own lockfile), client on CPU 0 and server on CPU 1 like Atlas's pair; ` +
        `dial = a new authenticated QUIC connection (TLS 1.3 with libp2p's peer-ID certificate), median of ${r.connect.n}; ` +
        `round trip = 32 bytes echoed on one reused stream, median of ${r.rtt.n}; requests = [u32 length][1 KiB] answered with 64 bytes, ` +
        `sequential (${r.reqSeq.n}) and ${r.reqPar.inFlight} in flight on a reused stream per worker (${r.reqPar.n}), each after ${N.reqWarmup} requests of its own shape as Atlas's; ` +
        `bulk = ${r.bulk.bytes / 1e6} MB on one stream until the server's byte count comes back, rounds ${
          r.bulk.rounds.map((x) => x.toFixed(1)).join(", ")
        } MB/s; idle = server RSS Δ over ${r.idle.n} connections from ${r.idle.n} client nodes (opened in ${
          r.idle.openMs.toFixed(0)
        } ms, forced GC before each reading)`,
    );
    api.log(
      `libp2p: dial ${ms(r.connect.median)}, round trip ${ms(r.rtt.median)}, requests ${rate(r.reqSeq.perSecond)} / ${
        rate(r.reqPar.perSecond)
      }, bulk ${r.bulk.median.toFixed(1)} MB/s, idle ${kb(perConn)} per connection`,
    );
  } catch (e) {
    api.note(`js-libp2p column skipped: ${(e as Error).message.split("\n")[0]}`);
    api.log(`libp2p: failed (${(e as Error).message.split("\n")[0]}): column skipped`);
  } finally {
    await stopChild(server, "SIGTERM");
  }
  await relayedBulk(api, script);
}

// ---- relayed bulk ----

/** A libp2p.mjs process of the relayed modes: each stdin line is answered with one JSON line. */
export interface Peer {
  proc: ChildProcess;
  /** The next line; an {"error"} line or the process's exit rejects. */
  next(what: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  ask(line: string, timeoutMs?: number): Promise<Record<string, unknown>>;
}

export function startPeer(script: string, args: string[]): Peer {
  const proc = spawn(process.execPath, [script, ...args], {
    env: { ...process.env, NODE_OPTIONS: "" },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let err = "";
  proc.stderr!.on("data", (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
  const exited = new Promise<never>((_, reject) =>
    proc.once("exit", (c) => reject(new Error(`libp2p ${args[0]} exited with ${c}: ${err.trim()}`)))
  );
  exited.catch(() => {});
  const lines = jsonLines(proc);
  const next = async (what: string, timeoutMs = 20_000) => {
    const v = await deadline(Promise.race([lines(), exited]), timeoutMs, `libp2p ${args[0]}: ${what}`);
    if (typeof v.error === "string") throw new Error(`libp2p ${args[0]}: ${what}: ${v.error.split("\n")[0]}`);
    return v;
  };
  const ask = (line: string, timeoutMs?: number) => {
    proc.stdin!.write(line + "\n");
    return next(line.split(" ")[0]!, timeoutMs);
  };
  return { proc, next, ask };
}

/** Closing stdin stops a peer; 5 s later it is killed. */
async function stopPeers(peers: Peer[]): Promise<void> {
  await Promise.all(peers.map(({ proc }) => stopChild(proc, "SIGKILL")));
}

/** Close a peer process's stdin (its signal to stop); `signal` it if it has not exited 5 s later. */
export async function stopChild(proc: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  proc.stdin!.end();
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const gone = new Promise((r) => proc.once("exit", r));
  const t = setTimeout(() => proc.kill(signal), 5000);
  await gone;
  clearTimeout(t);
}

interface Trio {
  relay: Peer;
  listener: Peer;
  dialer: Peer;
}

/**
 * Pinned like the relay phase's dialler, relay and agent (the same layout), so that the figure
 * sits on a row with the same placement tag; the tag, or " [unpinned]" as there.
 */
function placeTrio(api: PhaseApi, t: Trio): { placement: string; tag: string } {
  const unpinned = { placement: "not pinned (the scheduler places them)", tag: " [unpinned]" };
  const ncpu = cpus().length;
  const layout = relayLayout();
  if (!api.pinning || platform() !== "linux" || ncpu < 2) return unpinned;
  const pids = [t.dialer, t.relay, t.listener].map((p) => p.proc.pid!);
  // children inherit run.ts's CPU 0: "none" has to widen them explicitly
  if (layout === "none") {
    for (const pid of pids) api.pin(pid, `0-${ncpu - 1}`);
    return unpinned;
  }
  const [d, r, a] = layout.split(",") as [string, string, string];
  if (!(api.pin(pids[0]!, d) && api.pin(pids[1]!, r) && api.pin(pids[2]!, a))) return unpinned;
  return {
    placement: `dialer on CPU ${d}, relay on CPU ${r}, listener on CPU ${a} (taskset; run.ts, which only sends ` +
      `the stdin commands, stays on CPU 0)`,
    tag: relayTag(d, r, a),
  };
}

interface Cpu {
  dialer: number;
  relay: number;
  listener: number;
}

/** The listener's byte count, stamped with this process's clock (midpoint of the round trip). */
async function sampleListener(listener: Peer): Promise<{ bytes: number; cpuMs: number; t: number }> {
  const a = performance.now();
  const v = await listener.ask("count");
  return { bytes: v.bytes as number, cpuMs: v.cpuMs as number, t: (a + performance.now()) / 2 };
}

async function cpuMark(t: Trio): Promise<{ t: number; d: number; r: number; l: number }> {
  const [d, r, l] = await Promise.all([t.dialer.ask("cpu"), t.relay.ask("cpu"), t.listener.ask("count")]);
  return { t: performance.now(), d: d.cpuMs as number, r: r.cpuMs as number, l: l.cpuMs as number };
}

const cpuText = (c: Cpu) =>
  `CPU dialer ${(c.dialer * 100).toFixed(0)}%, relay ${(c.relay * 100).toFixed(0)}%, listener ${
    (c.listener * 100).toFixed(0)
  }%`;

/**
 * One run as relay.ts's timedBulk: a fresh dialer node opens one stream and writes RN.chunk
 * chunks; goodput = bytes the listener read between two samples taken after the warm-up.
 */
async function timedRun(t: Trio, addr: string, warmMs: number, winMs: number) {
  const info = await t.dialer.ask(`bulk ${addr} ${RN.chunk}`, 30_000);
  await new Promise((r) => setTimeout(r, warmMs));
  const c0 = await cpuMark(t);
  const p0 = await sampleListener(t.listener);
  await new Promise((r) => setTimeout(r, winMs));
  const p1 = await sampleListener(t.listener);
  const c1 = await cpuMark(t);
  await t.dialer.ask("stop", 15_000);
  const dt = c1.t - c0.t;
  const cpu = { dialer: (c1.d - c0.d) / dt, relay: (c1.r - c0.r) / dt, listener: (c1.l - c0.l) / dt };
  return { mbs: (p1.bytes - p0.bytes) / 1e6 / ((p1.t - p0.t) / 1000), cpu, info };
}

/** The relayed trio: the relay first, then the listener (its reservation made), then the dialer. */
async function startTrio(script: string, peers: Peer[]): Promise<Trio & { relayed: string; direct: string }> {
  const relay = startPeer(script, ["relay"]);
  peers.push(relay);
  const relayAddr = (await relay.next("start", 30_000)).addr as string;
  const listener = startPeer(script, ["listener", relayAddr]);
  peers.push(listener);
  const addrs = await listener.next("reservation", 30_000);
  const dialer = startPeer(script, ["dialer"]);
  peers.push(dialer);
  await dialer.next("start", 30_000);
  return { relay, listener, dialer, relayed: addrs.relayed as string, direct: addrs.direct as string };
}

/** js-libp2p beside the relay phase's cap-off row and its direct row (same method, interleaved). */
async function relayedBulk(api: PhaseApi, script: string): Promise<void> {
  const peers: Peer[] = [];
  try {
    const trio = await startTrio(script, peers);
    const { placement, tag } = placeTrio(api, trio);
    const direct: Awaited<ReturnType<typeof timedRun>>[] = [];
    const relayed: typeof direct = [];
    for (let i = 0; i < RN.offRounds; i++) {
      direct.push(await timedRun(trio, trio.direct, RN.directWarmMs, RN.directMs));
      relayed.push(await timedRun(trio, trio.relayed, RN.offWarmMs, RN.offMs));
    }
    const rMed = median(relayed.map((x) => x.mbs));
    const dMed = median(direct.map((x) => x.mbs));
    addPeerFigure(`relay: bulk through the relay${tag}, cap off`, rMed, mbs(rMed));
    addPeerFigure("relay: ↳ direct bulk, this process → agent", dMed, mbs(dMed));
    const info = relayed[0]!.info;
    const runs = (xs: typeof direct) => xs.map((x) => `${mbs(x.mbs)} (${cpuText(x.cpu)})`).join(", ");
    api.note(
      `js-libp2p relayed bulk: circuit-relay-v2 relay with no reservation limits (applyDefaultLimit: false; ` +
        `connection limited: ${info.limited}), listener reserving a slot on it, dialer dialling its /p2p-circuit ` +
        `address; relayed connection upgraded with ${info.encryption} + ${info.muxer} inside the relay's QUIC ` +
        `streams, direct = the same listener over QUIC; ${placement}; one stream of ${RN.chunk / 1024} KiB ` +
        `writes from a fresh dialer node per run, goodput read by the listener over ${RN.offMs / 1000} s after ` +
        `${RN.offWarmMs / 1000} s (direct ${RN.directMs / 1000} s after ${RN.directWarmMs / 1000} s), ` +
        `${RN.offRounds} rounds interleaved; relayed ${runs(relayed)}; direct ${runs(direct)}`,
    );
    api.log(
      `libp2p relayed bulk: ${mbs(rMed)} (${(rMed / dMed).toFixed(3)}× its direct ${mbs(dMed)}); runs ${
        relayed.map((x) => x.mbs.toFixed(1)).join(", ")
      } / direct ${direct.map((x) => x.mbs.toFixed(1)).join(", ")} MB/s; ${placement}`,
    );
  } catch (e) {
    const why = (e as Error).message.split("\n")[0];
    api.note(`js-libp2p relayed bulk skipped (the rest of the column stands): ${why}`);
    api.log(`libp2p relayed bulk: failed (${why}): figure skipped`);
  } finally {
    await stopPeers(peers);
  }
}
