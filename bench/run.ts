/**
 * Atlas benchmark: `npm run bench` (= node scripts/bundle.mjs && node --import tsx bench/run.ts).
 * This file runs the phases in order and writes the results; each phase is in bench/phases/.
 *
 * Transport phases (connect, idle, rtt, req, bulk): one process pair on 127.0.0.1 — this process is
 * the client; bench/server.ts (spawned here, IPC channel, bench/server-child.ts) holds the server
 * side of an Atlas node, a node:net TCP server and a node:tls TLS 1.3 server. Every figure is
 * measured for Atlas, TCP and TLS in the same run and printed side by side with its ratio and
 * target; the table is also written into bench/RESULTS.md (bench/results.ts).
 *
 * Placement: on Linux with 2+ cores the client is pinned to CPU 0 and the server to CPU 1; the
 * round-trip and request phases then run again with both on CPU 0 (rows tagged [2 cores]/[1 core]).
 *
 * js-libp2p phase (bench/phases/libp2p.ts, first): when bench/peers/ has js-libp2p installed
 * (`npm install --prefix bench/peers`: its own package.json and lockfile, not the root package,
 * not CI), the connect, round-trip and request figures are measured with js-libp2p over QUIC too
 * and printed in a "js-libp2p QUIC" column beside Atlas's; without it the column is left out.
 *
 * Relay phase (bench/phases/relay.ts, after the transport phases): a relay child and a target-agent
 * child (bench/phases/relay-child.ts), diallers in this process — relayed setup, bulk with the cap
 * on and off, 32 pipes through one relay. Its rows and notes start with "relay: ".
 *
 * Daemon phase (bench/phases/daemon.ts, last): real `atlas daemon` processes (dist/atlas) — messages
 * through two daemons' outbox/inbox, `atlas net send` / `--version` wall time, daemon RSS idle and
 * with 500 sessions.
 *
 * Agents phase (bench/phases/agents.ts, after it): the library (src/index.ts) against CLI processes —
 * messages/s end to end, and the request → reply round trip between two daemons.
 *
 * Diagnostic scripts, not part of the run, are in bench/tools/.
 *
 * Environment:
 *   BENCH_ONLY=libp2p,connect,idle,rtt,req,pairs,bulk,relay,tcpleg,daemon,agents   run only these phases; RESULTS.md
 *                                         untouched, except that a run including `relay` replaces
 *                                         the "relay: " rows and notes in its generated section
 *   BENCH_RELAY_PIN=d,r,a | none          CPUs of dialler (this process), relay, agent (default 0,1,1)
 *   BENCH_RELAY_CPU_PROF=DIR BENCH_RELAY_CPU_PROF_ROLE=relay|agent   that relay-phase child under --cpu-prof
 *   BENCH_CPU_PROF=DIR                    run the server child under `node --cpu-prof` into DIR
 *   BENCH_NO_WRITE=1                      do not touch bench/RESULTS.md
 *   BENCH_RETRY_ABOVE_HANDSHAKES=N        security.retry_above_handshakes of the bench nodes (0: a Retry for every connection)
 *   BENCH_NO_PIN=1                        leave CPU placement to the scheduler
 *   BENCH_DAEMON_MESSAGING_ONLY=1         daemon phase: stop after the messaging figures
 *   BENCH_DAEMON_CPU_PROF=DIR             daemon phase: daemons run from the bundle under `node --cpu-prof` into DIR
 */
import { mkdtempSync, rmSync } from "node:fs";
import { rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { Session } from "../src/net/session.ts";
import { HOST, startNode } from "./common.ts";
import type { PhaseApi, TransportApi } from "./phases/api.ts";
import { agentsPhase } from "./phases/agents.ts";
import { bulkPhase } from "./phases/bulk.ts";
import { connectPhase } from "./phases/connect.ts";
import { daemonPhase } from "./phases/daemon.ts";
import { ms } from "./phases/format.ts";
import { idlePhase } from "./phases/idle.ts";
import { libp2pPhase } from "./phases/libp2p.ts";
import { relayPhase } from "./phases/relay.ts";
import { tcpLegPhase } from "./phases/tcp-leg.ts";
import { pairsPhase } from "./phases/pairs.ts";
import { reqPhase } from "./phases/req.ts";
import { rttPhase } from "./phases/rtt.ts";
import { addRow, failures, header, mergeRelayResults, notes, table, writeResults } from "./results.ts";
import { childPid, killChild, pin, rpc, startServer } from "./server-child.ts";

setFlagsFromString("--expose-gc");
(globalThis as { gc?: () => void }).gc = runInNewContext("gc") as () => void;

const root = fileURLToPath(new URL("..", import.meta.url));
const only = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(",").map((s) => s.trim())) : null;
const phase = (p: string) => !only || only.has(p);
const log = (s: string) => process.stdout.write(s + "\n");
const started = performance.now();
const load0 = loadavg()[0]!.toFixed(2);
let pinning = "not pinned";

/** Every file of the run (stores of the nodes) lives under one temp dir, removed at exit. */
const benchRoot = mkdtempSync(join(tmpdir(), "atlas-bench-"));
process.env.BENCH_DIR = benchRoot;
process.on("exit", () => rmSync(benchRoot, { recursive: true, force: true }));

/** The transport phases against the server child, then the relay and daemon phases. */
async function main(): Promise<void> {
  const server = await startServer();
  pinning = server.pinning;
  const { ready } = server;
  const client = await startNode("bench-client", false);
  const creds = { keyPem: client.identity.keyPem, certPem: client.identity.certPem };
  log(`processes: ${pinning}`);
  log(
    `server ready (Atlas udp/${ready.atlasPort}, tcp/${ready.tcpPort}, tls/${ready.tlsPort}) after ${
      ms(performance.now() - started)
    }`,
  );
  const pinned = pinning.startsWith("client pinned");
  const api: PhaseApi = { root, benchRoot, addRow, note: (s) => void notes.push(s), log, pin, pinning: pinned };
  const t: TransportApi = { ...api, ready, creds, client, rpc };
  const tag = pinned ? " [2 cores]" : "";

  // js-libp2p first (when bench/peers is installed), so the rows below get its column.
  if (phase("libp2p")) await libp2pPhase(api, tag);
  if (phase("connect")) await connectPhase(t);
  if (phase("idle")) await idlePhase(t);
  let session: Session | null = null;
  const one = async () => (session ??= await client.node.connectTo({ host: HOST, port: ready.atlasPort }));
  if (phase("rtt")) await rttPhase(t, await one(), tag);
  if (phase("req")) await reqPhase(t, await one(), tag);
  if (phase("pairs")) await pairsPhase(t, await one(), tag);
  if (phase("bulk")) await bulkPhase(t, await one());
  // The latency figures again with both processes on one core (what the scheduler often picks for
  // a ping-pong pair when left alone): see "placement" in RESULTS.md.
  const pid = childPid();
  if (pinned && (phase("rtt") || phase("req")) && pid && pin(pid, 0)) {
    log("server re-pinned to CPU 0 (same core as the client)");
    if (phase("rtt")) await rttPhase(t, await one(), " [1 core]");
    if (phase("req")) await reqPhase(t, await one(), " [1 core]");
  }

  if (session) (session as Session).close("bench");
  await client.node.close();
  await client.store.close();
  await rm(client.dir, { recursive: true, force: true });
  await rpc("stop", 15_000);

  if (phase("relay")) await relayPhase({ ...api, benchOnly: only !== null });
  if (phase("tcpleg")) await tcpLegPhase(api); // docs/protocol.md#the-tcp-leg: the relayed figures over UDP and TLS/TCP
  if (phase("daemon")) await daemonPhase(api);
  if (phase("agents")) await agentsPhase(api);
}

/** The generated section of RESULTS.md: header, table, notes, and the whole run's time and load. */
function resultsText(totalMs: number): string {
  return [
    header(pinning),
    "",
    table(),
    "",
    ...notes.map((n) => `- ${n}`),
    `- whole run: ${(totalMs / 1000).toFixed(1)} s${
      only ? ` (phases: ${[...only].join(",")})` : ""
    }; 1-minute load average ${load0} at start, ${
      loadavg()[0]!.toFixed(2)
    } at end (the bench alone keeps it near 1–2; more means other work on the machine)`,
  ].join("\n");
}

function printSummary(totalMs: number): void {
  log("");
  log(table());
  log("");
  for (const n of notes) log(`- ${n}`);
  if (failures.length) {
    log("");
    log("targets missed:");
    for (const f of failures) log(`  - ${f}`);
  }
  log(`\nwhole run: ${(totalMs / 1000).toFixed(1)} s; load average ${load0} → ${loadavg()[0]!.toFixed(2)}`);
}

const watchdog = setTimeout(() => {
  process.stderr.write("bench: overall time limit (300 s) reached, aborting\n");
  killChild();
  process.exit(2);
}, 300_000);
watchdog.unref();

try {
  log(header().replace(/`/g, ""));
  log("");
  await main();
  const total = performance.now() - started;
  printSummary(total);
  if (!process.env.BENCH_NO_WRITE && !only) {
    await writeResults(resultsText(total).replace(/^(command|date|node|machine|processes|Atlas config): /gm, "- $1: "));
  } else if (!process.env.BENCH_NO_WRITE && only?.has("relay")) await mergeRelayResults();
  process.exit(0);
} catch (e) {
  process.stderr.write(`bench failed: ${(e as Error).stack ?? e}\n`);
  killChild();
  process.exit(1);
}
