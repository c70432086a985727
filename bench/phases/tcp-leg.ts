/**
 * TCP-leg phase (docs/protocol.md#the-tcp-leg): the same relayed figures over the dialler's UDP leg
 * and over its TCP leg (TLS on TCP), in one run, in one process on 127.0.0.1 — a relay (with its
 * TCP listener), a target agent registered over UDP answering bulk, and a dialler whose session
 * with the relay is QUIC over UDP or QUIC tunnelled over TLS on TCP. Loopback has no loss, so this
 * measures the leg's own cost (TLS, framing, one more copy), not head-of-line blocking.
 *
 *   1. relay session setup: a fresh session with the relay (QUIC or TLS + QUIC, then the Atlas
 *      handshake), median of 8;
 *   2. pipe setup: dialViaRelay over that session (RelayConnect → RelayReady → inner QUIC and Atlas
 *      handshakes end to end), median of 8;
 *   3. round trip: Atlas Ping over the relayed session, median of 50;
 *   4. bulk goodput over the relayed session, one stream, 1 s warm-up then 2 s measured, with the
 *      relay's cap off and at its default 1 MiB/s.
 *
 * Run alone: `node --import tsx bench/phases/tcp-leg.ts` (prints, writes nothing), or as a phase of
 * `npm run bench` with BENCH_ONLY=tcpleg.
 */
import { serviceLegs } from "../../src/net/legs.ts";
import type { Session } from "../../src/net/session.ts";
import { startTcpLeg } from "../../src/net/tcp-serve.ts";
import { dialViaRelay } from "../../src/relay/dial.ts";
import { RelayPresence } from "../../src/relay/presence.ts";
import { RelayServer } from "../../src/relay/server.ts";
import { silentLogger } from "../../src/util/log.ts";
import { type BenchNode, HOST, median, serveBulk, startNode } from "../common.ts";
import type { PhaseApi } from "./api.ts";
import { startBulk } from "./relay.ts";

const T = { setup: 8, pings: 50, warmMs: 1000, bulkMs: 2000 };

type Leg = "udp" | "tcp";
interface Figures {
  relaySetupMs: number;
  pipeSetupMs: number;
  rttMs: number;
  uncappedMBs: number;
  cappedMBs: number;
}

async function relayWithLeg(capBytes: number): Promise<{ n: BenchNode; server: RelayServer; tcpPort: number }> {
  const n = await startNode("relay", true);
  n.node.config.transport.relay_bandwidth_limit = capBytes;
  const server = new RelayServer(n.node);
  server.start();
  const leg = await startTcpLeg(n.node);
  return { n, server, tcpPort: leg.port };
}

/** One leg's figures: the dialler reaches `relay` over `leg`. */
async function measure(
  leg: Leg,
  relays: { ref: string; tcp: string }[],
  targetId: string,
  counter: { bytes: number },
): Promise<Figures> {
  const d = await startNode(`dialler-${leg}`, false);
  d.node.config.transport.relay_transport = leg;
  const entry = (r: { ref: string; tcp: string }) => (leg === "tcp" ? r.tcp : r.ref);
  const { resolveRelay } = await import("../../src/relay/session.ts");
  const ref = await resolveRelay(entry(relays[0]!));
  const relaySetup: number[] = [];
  for (let i = 0; i < T.setup; i++) {
    const t0 = performance.now();
    const s = await serviceLegs(d.node).connect(ref);
    relaySetup.push(performance.now() - t0);
    if (i < T.setup - 1) await s.disconnect();
  }
  const pipeSetup: number[] = [];
  let inner: Session | null = null;
  for (let i = 0; i < T.setup; i++) {
    const t0 = performance.now();
    inner = await dialViaRelay(d.node, entry(relays[0]!), targetId);
    pipeSetup.push(performance.now() - t0);
    if (i < T.setup - 1) await inner.disconnect();
  }
  const rtts: number[] = [];
  for (let i = 0; i < T.pings; i++) rtts.push((await inner!.ping(5000)).rttMs);
  const uncapped = await bulkRate(d, inner!, counter);
  const capped = await bulkRate(d, await dialViaRelay(d.node, entry(relays[1]!), targetId), counter);
  await d.node.close();
  await d.store.close();
  return {
    relaySetupMs: median(relaySetup),
    pipeSetupMs: median(pipeSetup),
    rttMs: median(rtts),
    uncappedMBs: uncapped,
    cappedMBs: capped,
  };
}

/** MB/s the target read over `s` during T.bulkMs after T.warmMs. */
async function bulkRate(d: BenchNode, s: Session, counter: { bytes: number }): Promise<number> {
  const bulk = await startBulk(d.node, s, T.warmMs + T.bulkMs + 500);
  await new Promise((r) => setTimeout(r, T.warmMs));
  const b0 = counter.bytes;
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, T.bulkMs));
  const rate = (counter.bytes - b0) / ((performance.now() - t0) / 1000) / 1e6;
  s.close("bench");
  await bulk.stop().catch(() => {});
  return rate;
}

export async function tcpLegPhase(api?: PhaseApi): Promise<Record<Leg, Figures>> {
  const log = api?.log ?? ((s: string) => console.log(s));
  const uncapped = await relayWithLeg(0);
  const capped = await relayWithLeg(1048576);
  const relays = [uncapped, capped].map((r) => ({
    ref: `${r.n.node.nodeId}@${HOST}:${r.n.node.endpoint.local.port}`,
    tcp: `tcp://${r.n.node.nodeId}@${HOST}:${r.tcpPort}`,
  }));
  const target = await startNode("target", true);
  target.node.config.network.relays = relays.map((r) => r.ref);
  target.node.config.transport.relay_transport = "udp";
  const counter = serveBulk(target.node);
  const presence = new RelayPresence(target.node, silentLogger);
  presence.start();
  while (!presence.status().every((s) => s.registered)) await new Promise((r) => setTimeout(r, 20));
  const out = {} as Record<Leg, Figures>;
  try {
    for (const leg of ["udp", "tcp"] as const) out[leg] = await measure(leg, relays, target.node.nodeId, counter);
  } finally {
    await presence.stop();
    for (const r of [uncapped, capped]) r.server.stop();
    for (const n of [target, uncapped.n, capped.n]) {
      await n.node.close();
      await n.store.close();
    }
  }
  const f = (x: number, d = 2) => x.toFixed(d);
  log("TCP-leg phase (one process, 127.0.0.1): figure | dialler on UDP | dialler on TLS/TCP");
  log(`  relay session setup, median of ${T.setup} | ${f(out.udp.relaySetupMs)} ms | ${f(out.tcp.relaySetupMs)} ms`);
  log(
    `  pipe setup (dialViaRelay), median of ${T.setup} | ${f(out.udp.pipeSetupMs)} ms | ${f(out.tcp.pipeSetupMs)} ms`,
  );
  log(`  relayed Ping round trip, median of ${T.pings} | ${f(out.udp.rttMs)} ms | ${f(out.tcp.rttMs)} ms`);
  log(`  relayed bulk, cap off | ${f(out.udp.uncappedMBs)} MB/s | ${f(out.tcp.uncappedMBs)} MB/s`);
  log(`  relayed bulk, cap 1 MiB/s | ${f(out.udp.cappedMBs)} MB/s | ${f(out.tcp.cappedMBs)} MB/s`);
  api?.note(
    `TCP leg (in-process, loopback): relay setup ${f(out.udp.relaySetupMs)}→${f(out.tcp.relaySetupMs)} ms, pipe setup ${
      f(out.udp.pipeSetupMs)
    }→${f(out.tcp.pipeSetupMs)} ms, RTT ${f(out.udp.rttMs)}→${f(out.tcp.rttMs)} ms, bulk ${f(out.udp.uncappedMBs)}→${
      f(out.tcp.uncappedMBs)
    } MB/s (cap off), ${f(out.udp.cappedMBs)}→${f(out.tcp.cappedMBs)} MB/s (cap 1 MiB/s)`,
  );
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  void tcpLegPhase().then(() => process.exit(0), (e) => {
    console.error(e);
    process.exit(1);
  });
}
