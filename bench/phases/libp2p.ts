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
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { N } from "../common.ts";
import { addPeerFigure } from "../results.ts";
import type { PhaseApi } from "./api.ts";
import { ms, rate } from "./format.ts";

interface PeerResults {
  connect: { median: number; n: number };
  rtt: { median: number; n: number };
  reqSeq: { perSecond: number; n: number };
  reqPar: { perSecond: number; n: number; inFlight: number };
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
  const server = spawn(process.execPath, [script, "server"], { env, stdio: ["pipe", "pipe", "pipe"] });
  let err = "";
  server.stderr!.on("data", (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
  try {
    const addr = await new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`libp2p server did not start: ${err}`)), 20_000);
      createInterface({ input: server.stdout! }).once("line", (l) => {
        clearTimeout(t);
        resolve((JSON.parse(l) as { addr: string }).addr);
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
    };
    const client = spawn(process.execPath, [script, "client", addr, JSON.stringify(params)], {
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    if (api.pinning) api.pin(client.pid!, "0");
    let out = "";
    let cerr = "";
    client.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    client.stderr!.on("data", (d: Buffer) => (cerr = (cerr + d.toString()).slice(-4000)));
    const code = await new Promise<number | null>((r) => client.on("exit", r));
    if (code !== 0) throw new Error(`libp2p client exited with ${code}: ${cerr.trim()}`);
    const r = JSON.parse(out.trim().split("\n").pop()!) as PeerResults;
    addPeerFigure("connect + Atlas handshake", r.connect.median, ms(r.connect.median));
    addPeerFigure(`round trip${tag}, median`, r.rtt.median, ms(r.rtt.median));
    addPeerFigure(`1 KiB request/response${tag}, sequential`, r.reqSeq.perSecond, rate(r.reqSeq.perSecond));
    addPeerFigure(
      `1 KiB request/response${tag}, ${N.inFlight} in flight`,
      r.reqPar.perSecond,
      rate(r.reqPar.perSecond),
    );
    api.note(
      `js-libp2p column: js-libp2p + @chainsafe/libp2p-quic from bench/peers (own lockfile), client on CPU 0 and server on CPU 1 like Atlas's pair; ` +
        `dial = a new authenticated QUIC connection (TLS 1.3 with libp2p's peer-ID certificate), median of ${r.connect.n}; ` +
        `round trip = 32 bytes echoed on one reused stream, median of ${r.rtt.n}; requests = [u32 length][1 KiB] answered with 64 bytes, ` +
        `sequential (${r.reqSeq.n}) and ${r.reqPar.inFlight} in flight on a reused stream per worker (${r.reqPar.n})`,
    );
    api.log(
      `libp2p: dial ${ms(r.connect.median)}, round trip ${ms(r.rtt.median)}, requests ${rate(r.reqSeq.perSecond)} / ${
        rate(r.reqPar.perSecond)
      }`,
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
