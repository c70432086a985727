import { DAEMON_EXIT_DEADLINE_MS, SERVICE_STOP_MS } from "../config/durations.ts";
import type { NodeEnv } from "../config/env.ts";
import type { AtlasNode } from "../net/node.ts";
import { Keepalive } from "../net/keepalive.ts";
import { formatAddr } from "../transport/addr.ts";
import type { ControlHandler, Service } from "../util/service.ts";
import { unixNow, within } from "../util/time.ts";
import { ControlServer } from "./control-server.ts";
import { banOp, connectOp, disconnectOp, pingOp, statusOp, unbanOp } from "./ops.ts";
import { Housekeeping, prunePeers } from "./housekeeping.ts";
import { acquirePidFile } from "./pidfile.ts";
import { startNode } from "./start-node.ts";
import { onPipeClosed } from "../util/pipes.ts";

export type { ControlHandler, Service };

export interface DaemonOptions {
  host?: string;
  port?: number;
  bootstrap: string[];
  relay: string[];
  /** Called once the node listens and the control socket is up (the CLI prints its line here). */
  onListening?: (l: Listening) => void;
}

/** Where a started daemon listens. */
export interface Listening {
  node_id: string;
  address: string;
  listen_addrs: string[];
  pid: number;
}

/**
 * `atlas daemon` (docs/architecture.md#daemon): take the home's lock, start the node, close session rows a crash
 * left open, start the services (keepalive, housekeeping, and those `extend` adds) and the control
 * socket; on SIGINT/SIGTERM or `daemon stop`,
 * Disconnect every peer, close the rows, flush, exit 0 within 5 s.
 */
export async function runDaemon(
  env: NodeEnv,
  o: DaemonOptions,
  extend?: (
    node: AtlasNode,
    handlers: Map<string, ControlHandler>,
    services: Service[],
    housekeeping: Housekeeping,
  ) => Promise<void>,
): Promise<void> {
  const startedAt = Date.now();
  // A closed stdout/stderr (`atlas daemon | head -1`) stops the daemon as SIGTERM would, even
  // when it happens while starting (the `listening` line is the first write).
  const pipeClosed = new Promise<string>((resolve) => onPipeClosed(() => resolve("output pipe closed")));
  // Fail fast on a missing identity or bad config before taking the lock.
  const { loadIdentity } = await import("../identity/identity.ts");
  await loadIdentity(env.paths);
  await env.config({ lists: { "network.bootstrap": o.bootstrap, "network.relays": o.relay } });
  const release = await acquirePidFile(env.paths);
  let node: AtlasNode | null = null;
  let control: ControlServer | null = null;
  const services: Service[] = [];
  let stopRequested!: () => void;
  const stopped = new Promise<string>((resolve) => (stopRequested = () => resolve("control")));
  try {
    node = await startNode(env, {
      listen: true,
      host: o.host,
      port: o.port,
      overrides: { lists: { "network.bootstrap": o.bootstrap, "network.relays": o.relay } },
    });
    const crashed = await node.store.sessions.closeAllOpen("crash", unixNow());
    if (crashed > 0) env.log.info("closed session rows left open by a crash", { count: crashed });
    const n = node;
    const handlers = new Map<string, ControlHandler>([
      ["status", () => statusOp(n, startedAt)],
      ["net.connect", (a) => connectOp(n, { target: String(a.target), keep: true })],
      [
        "net.ping",
        (a) => pingOp(n, { target: String(a.target), count: Number(a.count), interval: Number(a.interval) }),
      ],
      ["net.disconnect", (a) => disconnectOp(n, { target: String(a.target) })],
      ["net.ban", (a) => banOp(n, { target: String(a.target), seconds: Number(a.seconds) })],
      ["net.unban", (a) => unbanOp(n, { target: String(a.target) })],
      ["daemon.stop", () => (setImmediate(stopRequested), Promise.resolve({ pid: process.pid }))],
    ]);
    services.push(new Keepalive(n));
    // Every role meets throwaway identities: each leaves a peers row until pruned.
    const housekeeping = new Housekeeping(env.log);
    housekeeping.add("peer pruning", () => prunePeers(n.store, n.config, env.log));
    services.push(housekeeping);
    await extend?.(n, handlers, services, housekeeping);
    for (const s of services) s.start();
    control = await ControlServer.listen(env.paths.sockFile, handlers, env.log);
    const addr = formatAddr(n.endpoint.local);
    o.onListening?.({ node_id: n.nodeId, address: addr, listen_addrs: n.card.listenAddrs, pid: process.pid });
    env.log.info("daemon started", { address: addr, node_id: n.nodeId, pid: process.pid, socket: env.paths.sockFile });
    const why = await Promise.race([stopped, signal(), pipeClosed]);
    env.log.info("shutting down", { reason: why });
  } finally {
    const hard = setTimeout(() => process.exit(0), DAEMON_EXIT_DEADLINE_MS); // docs/architecture.md#daemon, whatever hangs
    hard.unref();
    await control?.close().catch(() => {});
    for (const s of services) await within(Promise.resolve(s.stop()), SERVICE_STOP_MS);
    if (node) {
      await node.close("DISCONNECT_SHUTDOWN", "node shutting down", "shutdown");
      await node.store.close();
    }
    await release();
  }
}

function signal(): Promise<string> {
  return new Promise((resolve) => {
    const on = (sig: string) => () => {
      process.off("SIGINT", onInt);
      process.off("SIGTERM", onTerm);
      resolve(sig);
    };
    const onInt = on("SIGINT");
    const onTerm = on("SIGTERM");
    process.on("SIGINT", onInt);
    process.on("SIGTERM", onTerm);
  });
}
