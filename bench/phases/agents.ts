/**
 * Agents phase of `npm run bench` (issue 12 item 7; alone with BENCH_ONLY=agents): what an agent
 * program gets from the library (src/index.ts) against what it gets spawning the CLI, on two real
 * `atlas daemon` processes (the bundle dist/atlas.mjs) on 127.0.0.1 with raised rate limits.
 *
 * 1. Messages/s, sender A → receiver B, end to end: from the first send until B's library
 *    subscriber (Atlas.inbox) has seen the last message. Through the library: AN.lib messages,
 *    `Atlas.send` with AN.inFlight in flight. Through CLI processes: AN.cli `atlas net send`
 *    processes one after another (what an agent without the library does). Target: ≥ 10×.
 * Placement: the daemons and this process are not pinned (this process is unpinned first).
 * 2. Request → reply round trip: A's `Atlas.request` to B, where a responder on B's library
 *    (inbox → reply) answers each; sequential, AN.req requests; p50 and p99. Each leg: a control
 *    call, the daemon's at-once send over the live session (src/daemon/send-now.ts), the other
 *    daemon's inbox commit (fsync) and MessageAck, and its push to the subscriber. Target: p50 ≤ 5 ms.
 */
import { spawn } from "node:child_process";
import { cpus, platform } from "node:os";
import { join } from "node:path";
import { Atlas } from "../../src/index.ts";
import { median, percentile } from "../common.ts";
import type { PhaseApi } from "./api.ts";
import { type Daemon, makeHome, type Prog, startDaemon, stopDaemon } from "./daemon.ts";
import { ms, rate } from "./format.ts";

/** Counts (every loop also stops at its cap, AN_CAP_MS). */
export const AN = { lib: 2000, inFlight: 16, cli: 20, reqWarmup: 20, req: 300 };
const AN_CAP_MS = 30_000;

const body = (i: number) => ({ i, text: "x".repeat(200) });

/** Runs `atlas net send` with `prog` for home `a`; resolves on its exit (status 0 required). */
function cliSend(prog: Prog, a: Daemon, target: string, i: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn(prog.cmd, [...prog.pre, "--home", a.paths.home, "net", "send", target, JSON.stringify(body(i))], {
      env: { ...process.env, NODE_OPTIONS: "" },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let err = "";
    p.stderr.on("data", (d) => (err += d));
    p.on("close", (c) => (c === 0 ? resolve() : reject(new Error(`atlas net send exited ${c}: ${err}`))));
  });
}

/** Resolves with the time (performance.now) B's inbox stream has seen `n` more messages. */
async function countArrivals(b: Atlas, n: number): Promise<{ done: Promise<number>; stop(): void }> {
  const inbox = await b.inbox();
  const done = (async () => {
    let seen = 0;
    for await (const _m of inbox) if (++seen >= n) break;
    return performance.now();
  })();
  return { done, stop: () => inbox.close() };
}

export async function agentsPhase(api: PhaseApi): Promise<void> {
  // run.ts pins this process to CPU 0 for the transport phases, and children inherit it: unpinned
  // first, so the two daemons and this process are placed by the scheduler on every core.
  const ncpu = cpus().length;
  if (api.pinning && platform() === "linux" && ncpu >= 2) api.pin(process.pid, `0-${ncpu - 1}`);
  const prog: Prog = { label: "bundle", cmd: process.execPath, pre: [join(api.root, "dist", "atlas.mjs")] };
  const a = await startDaemon(prog, "A", await makeHome(api, prog, "A"));
  const b = await startDaemon(prog, "B", await makeHome(api, prog, "B"));
  const la = await Atlas.attach({ home: a.paths.home });
  const lb = await Atlas.attach({ home: b.paths.home });
  try {
    await la.connect(b.target);
    await lb.connect(a.target);

    // 1. Library vs CLI processes, end to end.
    let arrivals = await countArrivals(lb, AN.lib);
    let t0 = performance.now();
    let next = 0;
    const worker = async () => {
      while (next < AN.lib && performance.now() - t0 < AN_CAP_MS) await la.send(b.nodeId, body(next++));
    };
    await Promise.all(Array.from({ length: AN.inFlight }, worker));
    const libN = next;
    if (libN < AN.lib) arrivals.stop();
    const libRate = libN / (((await arrivals.done) - t0) / 1000);
    arrivals = await countArrivals(lb, AN.cli);
    t0 = performance.now();
    let cliN = 0;
    while (cliN < AN.cli && performance.now() - t0 < AN_CAP_MS) await cliSend(prog, a, b.nodeId, cliN++);
    if (cliN < AN.cli) arrivals.stop();
    const cliRate = cliN / (((await arrivals.done) - t0) / 1000);
    api.addRow(
      `agent → agent via two daemons, 200 B bodies: library Atlas.send, ${AN.inFlight} in flight (${libN}) — vs \`atlas net send\` processes one after another (${cliN})`,
      rate(libRate),
      "",
      "",
      libRate / cliRate,
      "CLI",
      { op: ">=", value: 10 },
    );
    api.note(`agents: CLI processes ${rate(cliRate)} end to end (spawn of the bundle, control socket, delivery)`);

    // 2. Request → reply round trip: B answers every request through its library.
    const inbox = await lb.inbox();
    const responder = (async () => {
      for await (const m of inbox) if (m.reply_to === null) await lb.reply(m, { ok: m.seq });
    })();
    const lat: number[] = [];
    const tReq = performance.now();
    for (let i = 0; i < AN.reqWarmup + AN.req && performance.now() - tReq < AN_CAP_MS; i++) {
      const s = performance.now();
      await la.request(b.nodeId, body(i), { timeout: 10_000 });
      if (i >= AN.reqWarmup) lat.push(performance.now() - s);
    }
    inbox.close();
    await responder;
    const p50 = median(lat);
    api.addRow(
      `request → reply round trip, library ↔ library through two daemons (send at once, inbox commit, push), sequential (${lat.length}), p50 / p99`,
      `${ms(p50)} / ${ms(percentile(lat, 99))}`,
      "",
      "",
      p50 / 5,
      "5 ms",
      { op: "<=", value: 1 },
    );
  } finally {
    await la.close();
    await lb.close();
    for (const d of [a, b]) {
      const problem = await stopDaemon(d);
      if (problem) api.note(`agents: ${problem}`);
    }
  }
}
