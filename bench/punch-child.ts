/**
 * Child of the NAT phase (bench/holepunch.ts), started inside a lab namespace with an IPC channel:
 *
 *   punch-child.ts target|dialler <relay host:port> <bind host> <punch: 1|0>
 *
 * An AtlasNode as a daemon runs it — listening on <bind host>:4433, its public address from STUN
 * (the relay answers STUN), announced to the relay (RelayPresence), and with `punch` the hole-punch
 * service — plus, on the target, the bench bulk receiver. The dialler answers commands:
 *   reset {punch}      a new identity and an empty store (nothing learnt of the target survives)
 *   dial {target}      dialPeer by node ID: ms to the first session (through the relay), then ms from
 *                      the dial's start until a direct session with the target opened (≤ 15 s)
 *   ping {target, n}   n Pings over the current session: median and p90 RTT, and the path
 *   bulk {target, ms}  one bulk stream for ms (the parent samples the target's byte counter)
 * and both answer progress (the bulk counter) and stop.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { identityFromSeed } from "../src/identity/identity.ts";
import { generateSeed } from "../src/identity/keys.ts";
import { dialPeer } from "../src/net/dial.ts";
import { HolePunchService } from "../src/net/holepunch/service.ts";
import { AtlasNode } from "../src/net/node.ts";
import type { Session } from "../src/net/session.ts";
import { RelayPresence } from "../src/relay/presence.ts";
import { openStore, type Store } from "../src/store/index.ts";
import { StunService } from "../src/stun/service.ts";
import { silentLogger } from "../src/util/log.ts";
import { benchConfig, type BulkCounter, median, percentile, serveBulk } from "./common.ts";
import { startBulk } from "./phases/relay.ts";

export interface PunchChildCmd {
  id: number;
  cmd: "reset" | "dial" | "ping" | "bulk" | "progress" | "stop";
  target?: string;
  punch?: boolean;
  n?: number;
  ms?: number;
}

const [role, relayAddr, host, punchArg] = process.argv.slice(2);
if ((role !== "target" && role !== "dialler") || !relayAddr || !host) {
  throw new Error("usage: punch-child.ts target|dialler <relay host:port> <bind host> <1|0>");
}
const PORT = 4433;
const send = (m: unknown) => process.send!(m);
const until = async (what: string, ms: number, cond: () => boolean) => {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`${what} not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

interface Agent {
  node: AtlasNode;
  store: Store;
  dir: string;
  services: { stop(): unknown }[];
  bulk: BulkCounter | null;
}

/** A node as the daemon runs it: STUN, presence at the relay, hole punching when `punch`. */
async function startAgent(punch: boolean): Promise<Agent> {
  const config = benchConfig();
  config.network.host = host!;
  config.network.relays = [relayAddr!];
  config.stun.servers = [relayAddr!];
  config.transport.hole_punch = punch;
  const dir = await mkdtemp(join(tmpdir(), `atlas-bench-punch-${role}-`));
  const store = await openStore(join(dir, "peers.db"));
  const node = await AtlasNode.start({
    config,
    identity: identityFromSeed(generateSeed()),
    profile: { name: `bench-${role}`, bio: "", skills: ["bench"] },
    store,
    listen: true,
    host,
    port: PORT,
  });
  const stun = new StunService(node.endpoint, { servers: [relayAddr!], timeoutMs: 3000, intervalMs: 300_000 });
  stun.start();
  const presence = new RelayPresence(node, silentLogger);
  presence.start();
  const services: { stop(): unknown }[] = [stun, presence];
  if (punch) {
    const hp = new HolePunchService(node, { publicAddress: () => stun.publicAddress(), log: silentLogger });
    hp.start();
    services.push(hp);
  }
  await until("a STUN answer", 10_000, () => stun.status().kind === "stun");
  await until("registration with the relay", 10_000, () => presence.status()[0]?.registered === true);
  return { node, store, dir, services, bulk: role === "target" ? serveBulk(node) : null };
}

async function stopAgent(a: Agent): Promise<void> {
  for (const s of a.services) await s.stop();
  await a.node.close();
  await a.store.close();
  await rm(a.dir, { recursive: true, force: true }).catch(() => {});
}

let agent = await startAgent(punchArg === "1");

function session(target: string): Session {
  const s = agent.node.liveSession(target);
  if (!s) throw new Error("no session with the target");
  return s;
}

async function dial(target: string): Promise<{ firstMs: number; directMs: number | null; path: string }> {
  let directAt: number | null = null;
  const off = agent.node.onSessionOpen((s) => {
    if (s.nodeId === target && s.path === "direct" && directAt === null) directAt = performance.now();
  });
  const t0 = performance.now();
  try {
    const { session: s } = await dialPeer(agent.node, target);
    const firstMs = performance.now() - t0;
    await until("a direct session", 15_000, () => directAt !== null).catch(() => {});
    return { firstMs, directMs: directAt === null ? null : directAt - t0, path: s.pathLabel };
  } finally {
    off();
  }
}

async function ping(target: string, n: number): Promise<{ median: number; p90: number; path: string }> {
  const s = session(target);
  const rtts: number[] = [];
  for (let i = 0; i < n; i++) rtts.push((await s.ping(5000)).rttMs);
  return { median: median(rtts), p90: percentile(rtts, 90), path: s.pathLabel };
}

process.on("message", async (m: PunchChildCmd) => {
  try {
    switch (m.cmd) {
      case "reset":
        await stopAgent(agent);
        agent = await startAgent(m.punch ?? true);
        return send({ id: m.id, nodeId: agent.node.nodeId });
      case "dial":
        return send({ id: m.id, ...(await dial(m.target!)) });
      case "ping":
        return send({ id: m.id, ...(await ping(m.target!, m.n ?? 100)) });
      case "bulk": {
        const s = session(m.target!);
        const b = await startBulk(agent.node, s, m.ms ?? 3000);
        await new Promise((r) => setTimeout(r, m.ms ?? 3000));
        await b.stop();
        return send({ id: m.id, written: b.written(), path: s.pathLabel });
      }
      case "progress":
        return send({ id: m.id, bytes: agent.bulk?.bytes ?? 0 });
      case "stop":
        await stopAgent(agent);
        send({ id: m.id, stopped: true });
        process.disconnect();
        return;
    }
  } catch (e) {
    send({ id: m.id, error: (e as Error).message });
  }
});

send({ type: "ready", nodeId: agent.node.nodeId });
