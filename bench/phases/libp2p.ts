/**
 * js-libp2p phase: the same connect, round-trip and request figures measured with js-libp2p over
 * QUIC (`@chainsafe/libp2p-quic`, quinn in Rust threads), printed in a "js-libp2p QUIC" column
 * beside Atlas's rows. js-libp2p is not a dependency of Atlas: it lives in bench/peers/ with its
 * own package.json and lockfile, installed on demand —
 *   npm install --prefix bench/peers
 * — never by the root package or CI. Without bench/peers/node_modules this phase is skipped and
 * the column left out. Two processes, placed like Atlas's pair: the client on CPU 0, the server
 * on CPU 1 (bench/peers/libp2p.mjs).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { deadline, N } from "../common.ts";
import { addPeerFigure } from "../results.ts";
import type { PhaseApi } from "./api.ts";
import { kb, ms, rate } from "./format.ts";

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
        `sequential (${r.reqSeq.n}) and ${r.reqPar.inFlight} in flight on a reused stream per worker (${r.reqPar.n}); ` +
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
    server.stdin!.end();
    if (server.exitCode === null) {
      const gone = new Promise((r) => server.once("exit", r));
      const t = setTimeout(() => server.kill(), 5000);
      await gone;
      clearTimeout(t);
    }
  }
}
