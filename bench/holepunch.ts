/**
 * NAT phase (`npm run bench:nat`, root only): hole punching (docs/protocol.md#hole-punching) in the namespace lab of
 * test/helpers/netns.ts — routers of the four kinds (a, e: port-restricted, b: symmetric,
 * c, g: full cone, d, h: address-restricted) and an `atlas relay` on the public segment, which is
 * also the agents' STUN server. Agents are bench/punch-child.ts processes, each an AtlasNode run as the daemon runs
 * it (STUN, relay presence, hole punching) inside its router's LAN.
 *
 * Figures:
 * 1. Time from the first dial to the direct path, per punchable NAT pair: the dialler dials the
 *    target by node ID alone (it knows only the relay), the relay wins first, then the direct
 *    session opens; ms from dialPeer's start to that session. Median and p90 of NAT_N.samples, each
 *    with a fresh dialler identity and store.
 * 2. For one pair (a → c): Ping round trip (median and p90 of NAT_N.pings) and one-stream bulk
 *    goodput, relayed (dialler without hole punching; the relay's bandwidth cap off, as a relay
 *    operator could set it) against hole-punched, in the same run.
 * Nothing leaves the namespaces; every loop is bounded by its count and a deadline.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { appendFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { cleanupHomes, initHome } from "../test/helpers/cli.ts";
import {
  AGENT_A,
  AGENT_B,
  AGENT_C,
  AGENT_D,
  AGENT_E,
  AGENT_G,
  AGENT_H,
  createNet,
  killAllInNs,
  type Net,
  netnsUnavailable,
  PUB_RELAY,
  startInNs,
} from "../test/helpers/netns.ts";
import { deadline, median, percentile } from "./common.ts";
import type { PunchChildCmd } from "./punch-child.ts";

export const NAT_N = { samples: 10, pings: 200, bulkWarmMs: 1000, bulkMs: 3000 };

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const RELAY = `${PUB_RELAY}:4433`;
type Agent = "a" | "b" | "c" | "d" | "e" | "g" | "h";
const KIND: Record<Agent, string> = {
  a: "port-restricted",
  b: "symmetric",
  c: "full cone",
  d: "address-restricted",
  e: "port-restricted",
  g: "full cone",
  h: "address-restricted",
};
const HOSTS: Record<Agent, string> = {
  a: AGENT_A,
  b: AGENT_B,
  c: AGENT_C,
  d: AGENT_D,
  e: AGENT_E,
  g: AGENT_G,
  h: AGENT_H,
};
/** Every punchable pair of NAT kinds (symmetric ↔ port-restricted / symmetric stay relayed). */
const PAIRS: [Agent, Agent][] = [
  ["a", "e"],
  ["c", "g"],
  ["d", "h"],
  ["a", "c"],
  ["c", "d"],
  ["d", "a"],
  ["b", "c"],
  ["d", "b"],
];

interface Child {
  proc: ChildProcess;
  nodeId: string;
  rpc<T>(m: Omit<PunchChildCmd, "id">, timeoutMs?: number): Promise<T>;
}

async function child(net: Net, k: Agent, role: "target" | "dialler", punch: boolean): Promise<Child> {
  const proc = spawn(
    "ip",
    [
      "netns",
      "exec",
      net.ns[k],
      process.execPath,
      "--import",
      "tsx",
      join(ROOT, "bench", "punch-child.ts"),
      role,
      RELAY,
      HOSTS[k],
      punch ? "1" : "0",
    ],
    { stdio: ["ignore", "inherit", "inherit", "ipc"], env: { ...process.env, NODE_OPTIONS: "" } },
  );
  let id = 0;
  const waiting = new Map<number, (r: Record<string, unknown>) => void>();
  const ready = new Promise<string>((resolve, reject) => {
    proc.on("message", (m: Record<string, unknown>) => {
      if (m.type === "ready") return resolve(String(m.nodeId));
      waiting.get(Number(m.id))?.(m);
    });
    proc.on("exit", (code) => reject(new Error(`punch-child ${role} in ${k} exited with ${code}`)));
  });
  const nodeId = await deadline(ready, 30_000, `punch-child ${role} in ${k} ready`);
  const rpc = <T>(m: Omit<PunchChildCmd, "id">, timeoutMs = 30_000): Promise<T> => {
    const rid = ++id;
    return deadline(
      new Promise<T>((resolve, reject) => {
        waiting.set(rid, (r) => {
          waiting.delete(rid);
          if (r.error) reject(new Error(`${role} in ${k}: ${r.error}`));
          else resolve(r as T);
        });
        proc.send({ ...m, id: rid });
      }),
      timeoutMs,
      `${role} in ${k}: ${m.cmd}`,
    );
  };
  return { proc, nodeId, rpc };
}

const stopChild = (c: Child) => c.rpc({ cmd: "stop" }, 10_000).catch(() => c.proc.kill("SIGKILL"));
const ms = (x: number) => `${x.toFixed(0)} ms`;
/** Paths as outputs show them: node IDs shortened to `atlas_` + 12 hex + `…`. */
const short = (path: string) => path.replace(/atlas_([0-9a-f]{12})[0-9a-f]{52}/g, "atlas_$1…");

interface Dial {
  firstMs: number;
  directMs: number | null;
  path: string;
}
interface Ping {
  median: number;
  p90: number;
  path: string;
}

/** Goodput of one bulk stream from the dialler to the target, sampled at the target after a warm-up. */
async function bulk(dialler: Child, target: Child): Promise<{ mbps: number; path: string }> {
  const run = dialler.rpc<{ path: string }>(
    { cmd: "bulk", target: target.nodeId, ms: NAT_N.bulkWarmMs + NAT_N.bulkMs },
    NAT_N.bulkWarmMs + NAT_N.bulkMs + 30_000,
  );
  await new Promise((r) => setTimeout(r, NAT_N.bulkWarmMs));
  const a = await target.rpc<{ bytes: number }>({ cmd: "progress" });
  const ta = performance.now();
  await new Promise((r) => setTimeout(r, NAT_N.bulkMs));
  const b = await target.rpc<{ bytes: number }>({ cmd: "progress" });
  const tb = performance.now();
  const { path } = await run;
  return { mbps: (b.bytes - a.bytes) / ((tb - ta) / 1000) / 1e6, path };
}

async function main(): Promise<void> {
  const why = netnsUnavailable();
  if (why) {
    console.log(`NAT phase skipped: ${why}`);
    return;
  }
  const net = createNet();
  const children: Child[] = [];
  try {
    const relayHome = (await initHome("bench-relay")).home;
    // Cap off so the relayed throughput is the path's, not the policer's (default: 1 MiB/s); and
    // every fresh dialler is a new connection from its router's address: lift the relay's per-IP
    // budget of 30 new connections a minute, which the samples would exhaust.
    await appendFile(
      join(relayHome, "state", "config.toml"),
      `\n[transport]\nrelay_bandwidth_limit = 0\n\n[security]\nhandshakes_per_ip_per_minute = 100000\n`,
    );
    const relay = await startInNs(net.ns.r, relayHome, PUB_RELAY, 4433, ["relay"]);
    const rows: Record<string, string>[] = [];
    for (const [x, y] of PAIRS) {
      const target = await child(net, y, "target", true);
      const dialler = await child(net, x, "dialler", true);
      children.push(target, dialler);
      const first: number[] = [];
      const direct: number[] = [];
      for (let i = 0; i < NAT_N.samples; i++) {
        if (i > 0) await dialler.rpc({ cmd: "reset", punch: true });
        const d = await dialler.rpc<Dial>({ cmd: "dial", target: target.nodeId }, 40_000);
        first.push(d.firstMs);
        if (d.directMs !== null) direct.push(d.directMs);
      }
      rows.push({
        pair: `${x} (${KIND[x]}) → ${y} (${KIND[y]})`,
        direct: `${direct.length}/${NAT_N.samples}`,
        "first session (relay), median": ms(median(first)),
        "to direct, median": direct.length ? ms(median(direct)) : "-",
        "to direct, p90": direct.length ? ms(percentile(direct, 90)) : "-",
      });
      if (x === "a" && y === "c") {
        // Same pair, same run: relayed (no hole punching on the dialler) against hole-punched.
        await dialler.rpc({ cmd: "reset", punch: false });
        const r = await dialler.rpc<Dial>({ cmd: "dial", target: target.nodeId }, 40_000);
        const rPing = await dialler.rpc<Ping>({ cmd: "ping", target: target.nodeId, n: NAT_N.pings });
        const rBulk = await bulk(dialler, target);
        await dialler.rpc({ cmd: "reset", punch: true });
        const p = await dialler.rpc<Dial>({ cmd: "dial", target: target.nodeId }, 40_000);
        await new Promise((res) => setTimeout(res, 6000)); // the relayed session's grace period ends
        const pPing = await dialler.rpc<Ping>({ cmd: "ping", target: target.nodeId, n: NAT_N.pings });
        const pBulk = await bulk(dialler, target);
        console.log(`\nNAT phase: a (port-restricted) → c (full cone), same run (relay cap off)`);
        console.table([
          {
            path: `${short(rPing.path)} (dialled: ${short(r.path)})`,
            "RTT median": `${rPing.median.toFixed(2)} ms`,
            "RTT p90": `${rPing.p90.toFixed(2)} ms`,
            "bulk, one stream": `${rBulk.mbps.toFixed(1)} MB/s`,
          },
          {
            path: `${short(pPing.path)} (dialled: ${short(p.path)})`,
            "RTT median": `${pPing.median.toFixed(2)} ms`,
            "RTT p90": `${pPing.p90.toFixed(2)} ms`,
            "bulk, one stream": `${pBulk.mbps.toFixed(1)} MB/s`,
          },
        ]);
        console.log(
          `ratios: RTT punched/relayed ${(pPing.median / rPing.median).toFixed(2)}×, bulk punched/relayed ${
            (pBulk.mbps / rBulk.mbps).toFixed(2)
          }×`,
        );
      }
      await Promise.all([stopChild(dialler), stopChild(target)]);
    }
    console.log(`\nNAT phase: time from the first dial to the direct path (${NAT_N.samples} fresh diallers per pair)`);
    console.table(rows);
    await relay.stop();
  } finally {
    for (const c of children) c.proc.kill("SIGKILL");
    killAllInNs();
    net.destroy();
    await cleanupHomes();
  }
}

await main();
