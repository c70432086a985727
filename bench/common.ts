/**
 * Shared pieces of the benchmark (bench/run.ts = client, bench/server.ts = server child):
 * the benchmark configuration, the Atlas node factory, the TCP/TLS wire protocol and statistics.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp } from "node:fs/promises";
import { createInterface } from "node:readline";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Config, defaultConfig } from "../src/config/defaults.ts";
import { type Identity, identityFromSeed } from "../src/identity/identity.ts";
import { generateSeed } from "../src/identity/keys.ts";
import { ProtocolCode } from "../src/errors.ts";
import { AtlasNode } from "../src/net/node.ts";
import { openStore, type Store } from "../src/store/index.ts";
import type { QuicStream } from "../src/transport/stream.ts";
import { encodeFrame } from "../src/wire/frame.ts";
import type { WireMessage } from "../src/wire/messages.ts";

export const HOST = "127.0.0.1";

/** Sizes and counts of every figure (one place, printed in RESULTS.md). */
export const N = {
  connectWarmup: 5,
  connect: 50,
  pingWarmup: 100,
  ping: 2000,
  rttBytes: 32,
  bulkBytes: 200 * 1000 * 1000,
  bulkChunk: 256 * 1024,
  bulkRounds: 3,
  /**
   * Requests sent before each timed request loop, in its own shape (one or inFlight outstanding):
   * JIT tiering of the request path takes a few thousand requests on a pinned core (RESULTS
   * item 13), and the figure is the steady state a running daemon serves at.
   */
  reqWarmup: 4000,
  reqSeq: 2000,
  reqParallel: 4000,
  inFlight: 8,
  reqBodyBytes: 1024,
  reqAckBytes: 64,
  idleConns: 500,
  idleConcurrency: 16,
} as const;

/** Wall-clock caps (ms): every loop stops at its count or its cap, whichever comes first. */
export const CAP = {
  connect: 20_000,
  ping: 15_000,
  bulk: 60_000,
  req: 15_000,
  idle: 60_000,
} as const;

/**
 * Defaults, except the admission limits that 500 connections from one IP would trip
 * (docs/protocol.md#transport, docs/protocol.md#handshake defaults: max_connections 200, handshake_limit 50, handshakes_per_ip_per_minute 30)
 * and the relay's per-address limits (docs/protocol.md#relay).
 * Everything else — 1350-byte datagrams, windows, timeouts — stays at its default.
 */
export function benchConfig(): Config {
  const c = defaultConfig();
  c.transport.max_connections = 2000;
  c.security.handshake_limit = 1000;
  c.security.handshakes_per_ip_per_minute = 100_000;
  // A/B of the Retry lever on one build: BENCH_RETRY_ABOVE_HANDSHAKES=0 makes every connection pay it.
  const retryAbove = process.env.BENCH_RETRY_ABOVE_HANDSHAKES;
  if (retryAbove) c.security.retry_above_handshakes = Number(retryAbove);
  // A/B of busy polling on one build: BENCH_BUSY_POLL_US=0 turns it off.
  const busyPoll = process.env.BENCH_BUSY_POLL_US;
  if (busyPoll) c.transport.busy_poll_us = Number(busyPoll);
  // One address plays every relay source (the aggregate's 32 diallers to one agent): lift the
  // relay's per-address and per-target pipe limits to its capacity.
  c.transport.relay_pairings_per_ip = c.transport.relay_capacity;
  c.transport.relay_pipes_per_target = c.transport.relay_capacity * 2; // one address may hold half a target's pipes
  // docs/protocol.md#trust-rate-limits-and-bans per-peer request limits (5/s for an unknown peer) would refuse the request loops with
  // Error 4001 as soon as the node enforces them: lift them for every tier.
  for (const tier of Object.values(c.rate_limit)) {
    tier.per_second = 1e9;
    tier.per_minute = 1e9;
    tier.bytes_per_minute = 1e15;
  }
  c.network.host = HOST;
  c.stun.servers = [];
  return c;
}

export const RAISED_LIMITS =
  "transport.max_connections 200→2000, security.handshake_limit 50→1000, security.handshakes_per_ip_per_minute 30→100000, transport.relay_pairings_per_ip 8→64, transport.relay_pipes_per_target 8→128 (one address may hold 64), rate_limit.* (per-peer request limits) lifted";

export interface BenchNode {
  node: AtlasNode;
  identity: Identity;
  store: Store;
  dir: string;
}

/** A node with a fresh identity and store under `root` (default: $BENCH_DIR, else the temp dir). */
export async function startNode(
  name: string,
  listen: boolean,
  root = process.env.BENCH_DIR ?? tmpdir(),
): Promise<BenchNode> {
  const dir = await mkdtemp(join(root, `atlas-bench-${name}-`));
  const store = await openStore(join(dir, "peers.db"));
  return { ...(await startNodeWith(name, listen, store)), store, dir };
}

/** A listening node that answers every Message with a MessageAck at once: the two-process probes' server. */
export async function startAckServer(name: string): Promise<BenchNode> {
  const srv = await startNode(name, true);
  srv.node.handle(
    "Message",
    (_s, req) =>
      Promise.resolve({ type: "MessageAck", msg_id: req.type === "Message" ? req.id : undefined, status: "received" }),
  );
  return srv;
}

/**
 * Run `script server …args` (a probe's own file) in a child pinned to CPU 1, stdin and stdout
 * piped: its first line is the port its ack server listens on.
 */
export async function spawnProbeServer(
  script: string,
  args: string[] = [],
  nodeArgs: string[] = [],
): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn("taskset", [
    "-c",
    "1",
    process.execPath,
    ...nodeArgs,
    "--import",
    "tsx",
    script,
    "server",
    ...args,
  ], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const line = await new Promise<string>((r) => createInterface({ input: child.stdout! }).once("line", r));
  return { child, port: Number(line) };
}

/** A node with a fresh identity on an existing store (many client nodes can share one). */
export async function startNodeWith(
  name: string,
  listen: boolean,
  store: Store,
): Promise<{ node: AtlasNode; identity: Identity }> {
  const identity = identityFromSeed(generateSeed());
  const node = await AtlasNode.start({
    config: benchConfig(),
    identity,
    profile: { name, bio: "", skills: ["bench"] },
    store,
    listen,
    host: HOST,
    port: 0,
    // BENCH_PIPELINE=0: a stream per request, as before pipelined requests (A/B runs).
    pipeline: process.env.BENCH_PIPELINE !== "0",
  });
  return { node, identity };
}

// ---- TCP / TLS baseline protocol ------------------------------------------------------------
// The first byte a client writes picks the mode of the connection:
//   'E' echo every byte back (round-trip time),
//   'R' requests [u32 BE length][payload] each answered by [u32 BE length][N.reqAckBytes bytes],
//   'B' bulk: count bytes until FIN, then answer the count as a u64 BE and end,
//   'I' idle: hold the connection, do nothing (memory).
export const MODE = { echo: 0x45, req: 0x52, bulk: 0x42, idle: 0x49 } as const;

// ---- IPC between run.ts and server.ts -------------------------------------------------------
export interface ServerReady {
  type: "ready";
  atlasPort: number;
  tcpPort: number;
  tlsPort: number;
  nodeId: string;
}
export interface MemReport {
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}
export type ClientCmd =
  | { id: number; cmd: "mem" }
  | { id: number; cmd: "counts" }
  | { id: number; cmd: "bulkBytes" }
  | { id: number; cmd: "stop" };

// ---- statistics ----------------------------------------------------------------------------
/** `p`, or a rejection after `ms` (every wait of the benchmark is bounded). */
export function deadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      t = setTimeout(() => reject(new Error(`${what}: no progress within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(t));
}

export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[i]!;
}
export const median = (xs: number[]) => percentile(xs, 50);

export function memUsage(): MemReport {
  const m = process.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers };
}

/** Full GC (when --expose-gc) twice, with a turn of the event loop between. */
export async function settleGc(): Promise<void> {
  const g = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; i < 2; i++) {
    g?.();
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Run `one` `count` times (with `inFlight` outstanding) or until `capMs`; returns per-op latencies.
 * One watchdog bounds the wait (no operation finishing for 10 s rejects), not a timer and a race
 * per operation: js-libp2p's loop has neither, and they cost the Atlas client a few µs a request.
 */
export async function loop(
  count: number,
  inFlight: number,
  capMs: number,
  one: () => Promise<void>,
): Promise<{ n: number; ms: number; lat: number[]; capped: boolean }> {
  const lat: number[] = [];
  let issued = 0;
  const t0 = performance.now();
  let capped = false;
  let lastDone = t0;
  const worker = async () => {
    while (issued < count) {
      if (performance.now() - t0 > capMs) {
        capped = true;
        return;
      }
      issued++;
      const s = performance.now();
      await one();
      lastDone = performance.now();
      lat.push(lastDone - s);
    }
  };
  let watchdog: ReturnType<typeof setInterval> | undefined;
  const stalled = new Promise<never>((_, reject) => {
    watchdog = setInterval(() => {
      if (performance.now() - lastDone > 10_000) reject(new Error("one operation: no progress within 10000 ms"));
    }, 1000);
  });
  try {
    await Promise.race([Promise.all(Array.from({ length: inFlight }, worker)), stalled]);
  } finally {
    clearInterval(watchdog);
  }
  return { n: lat.length, ms: performance.now() - t0, lat, capped };
}

// ---- the bulk receiver of the relay and NAT phases --------------------------------------------

/** Raw bulk bytes read by every bulk stream so far, and the streams still reading. */
export interface BulkCounter {
  bytes: number;
  open: number;
  done: number;
}

/**
 * The bench "Message" handler of a receiving agent: topic "bench/bulk" gets an interim MessageAck
 * ("go"), then every raw byte until FIN is counted; other Messages are acknowledged.
 */
export function serveBulk(node: AtlasNode): BulkCounter {
  const c: BulkCounter = { bytes: 0, open: 0, done: 0 };
  node.handle("Message", async (_session, req: WireMessage, stream: QuicStream, shared) => {
    if (req.type !== "Message") return null;
    const ack: WireMessage = { type: "MessageAck", msg_id: req.id, status: "received" };
    if (req.topic !== "bench/bulk") return ack;
    if (shared) return { type: "Error", code: ProtocolCode.ERR_MESSAGE_REJECTED, message: "bulk needs its own stream" };
    await stream.write(encodeFrame(ack)); // "go"
    c.open++;
    try {
      for (;;) {
        const chunk = await stream.read(30_000);
        if (chunk === null) break;
        c.bytes += chunk.length;
      }
    } catch {
      return null; // the dialler closed the session to end a timed run
    } finally {
      c.open--;
      c.done++;
    }
    return ack;
  });
  return c;
}
