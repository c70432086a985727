import { DAEMON_EXIT_DEADLINE_MS, SERVICE_STOP_MS } from "../config/durations.ts";
import type { NodeEnv } from "../config/env.ts";
import type { AtlasNode } from "../net/node.ts";
import { Keepalive } from "../net/keepalive.ts";
import { formatAddr } from "../transport/addr.ts";
import type { ControlHandler, DaemonPart, Service } from "../util/service.ts";
import { unixNow, within } from "../util/time.ts";
import { ControlServer } from "./control-server.ts";
import { banOp, connectOp, disconnectOp, pingOp, statusOp, unbanOp } from "./ops.ts";
import { Housekeeping, prunePeers } from "./housekeeping.ts";
import { acquirePidFile } from "./pidfile.ts";
import { startNode } from "./start-node.ts";
import { onPipeClosed } from "../util/pipes.ts";
import { VERSION } from "../version.ts";

export type { ControlHandler, DaemonPart, Service };

/** Builds the parts of a daemon once its node is up: the explicit list of what it runs. */
export type DaemonParts = (node: AtlasNode) => Promise<DaemonPart[]>;

export interface DaemonOptions {
  host?: string;
  port?: number;
  bootstrap: string[];
  relay: string[];
  /** Which daemon this is, for the `atlas_info` metric (default "daemon"). */
  role?: "daemon" | "relay" | "bootstrap";
  /**
   * Run inside another program (the library's `Atlas.start`, src/api/): stop when this resolves,
   * with no signal handlers, no watch on stdout/stderr and no hard process exit — the process is
   * the embedder's.
   */
  until?: Promise<unknown>;
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
 * left open, start the services (keepalive, housekeeping, and those of the role's `parts`) and the
 * control socket; on SIGINT/SIGTERM or `daemon stop`,
 * Disconnect every peer, close the rows, flush, exit 0 within 5 s.
 */
export async function runDaemon(
  env: NodeEnv,
  o: DaemonOptions,
  parts: DaemonParts = () => Promise.resolve([]),
): Promise<void> {
  const startedAt = Date.now();
  // A closed stdout/stderr (`atlas daemon | head -1`) stops the daemon as SIGTERM would, even
  // when it happens while starting (the `listening` line is the first write).
  const pipeClosed = o.until
    ? o.until.then(() => "embedder asked")
    : new Promise<string>((resolve) => onPipeClosed(() => resolve("output pipe closed")));
  // Fail fast on a missing identity or bad config before taking the lock.
  const { loadIdentity } = await import("../identity/identity.ts");
  await loadIdentity(env.paths);
  const config = await env.config({ lists: { "network.bootstrap": o.bootstrap, "network.relays": o.relay } });
  const metricsAt = config.metrics.listen
    ? (await import("../metrics/server.ts")).parseMetricsListen(config.metrics.listen, config.metrics.allow_remote)
    : null;
  const release = await acquirePidFile(env.paths);
  let node: AtlasNode | null = null;
  let control: ControlServer | null = null;
  let metricsServer: { address: string; close(): Promise<void> } | null = null;
  const services: Service[] = [];
  let stopRequested!: () => void;
  const stopped = new Promise<string>((resolve) => (stopRequested = () => resolve("control")));
  try {
    const { PromMetrics } = metricsAt ? await import("../metrics/prom.ts") : { PromMetrics: null };
    const metrics = PromMetrics ? new PromMetrics({ role: o.role ?? "daemon", version: VERSION }) : null;
    node = await startNode(env, {
      listen: true,
      host: o.host,
      port: o.port,
      overrides: { lists: { "network.bootstrap": o.bootstrap, "network.relays": o.relay } },
      metrics: metrics ?? undefined,
      holdRequests: true, // until the parts' handlers are plugged in (below)
    });
    const crashed = await node.store.sessions.closeAllOpen("crash", unixNow());
    if (crashed > 0) env.log.info("closed session rows left open by a crash", { count: crashed });
    const n = node;
    observeNode(n);
    const list = await parts(n);
    const handlers = new Map<string, ControlHandler>([
      [
        "status",
        async () => ({
          ...(await statusOp(n, startedAt)),
          metrics_address: metricsServer?.address ?? null,
          ...(await partsStatus(list)),
        }),
      ],
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
    plugIn(list, handlers, services, housekeeping);
    n.openRequests();
    for (const s of services) s.start();
    if (metrics && metricsAt) {
      metricsServer = await (await import("../metrics/server.ts")).serveMetrics(metrics, metricsAt, env.log);
      env.log.info("metrics endpoint listening", { address: `http://${metricsServer.address}/metrics` });
    }
    control = await ControlServer.listen(env.paths.sockFile, handlers, env.log);
    const addr = formatAddr(n.endpoint.local);
    o.onListening?.({ node_id: n.nodeId, address: addr, listen_addrs: n.card.listenAddrs, pid: process.pid });
    env.log.info("daemon started", { address: addr, node_id: n.nodeId, pid: process.pid, socket: env.paths.sockFile });
    const why = await Promise.race([stopped, o.until ? pipeClosed : signal(), pipeClosed]);
    env.log.info("shutting down", { reason: why });
  } finally {
    // docs/architecture.md#daemon: gone within 5 s whatever hangs — unless embedded (not our process to end).
    const hard = o.until ? null : setTimeout(() => process.exit(0), DAEMON_EXIT_DEADLINE_MS);
    hard?.unref();
    await control?.close().catch(() => {});
    await metricsServer?.close().catch(() => {});
    for (const s of services) await within(Promise.resolve(s.stop()), SERVICE_STOP_MS);
    if (node) {
      await node.close("DISCONNECT_SHUTDOWN", "node shutting down", "shutdown");
      await node.store.close();
    }
    await release();
  }
}

/** Each part's control operations, services and housekeeping jobs, in list order. */
function plugIn(
  parts: DaemonPart[],
  handlers: Map<string, ControlHandler>,
  services: Service[],
  housekeeping: Housekeeping,
): void {
  for (const p of parts) {
    for (const [op, h] of Object.entries(p.handlers ?? {})) {
      if (handlers.has(op)) throw new Error(`daemon part ${p.name}: control operation ${op} is taken`);
      handlers.set(op, h);
    }
    services.push(...(p.services ?? []));
    for (const [job, run] of Object.entries(p.housekeeping ?? {})) housekeeping.add(job, run);
  }
}

/** What the parts add to `atlas status`, merged in list order. */
async function partsStatus(parts: DaemonPart[]): Promise<object> {
  const out: Record<string, unknown> = {};
  for (const p of parts) if (p.status) Object.assign(out, await p.status());
  return out;
}

/** Every role's scrape-time values: sessions by path and trust, bans in force, busy polls. */
function observeNode(n: AtlasNode): void {
  n.metrics.observe("atlas_sessions", () => {
    const counts = new Map<string, { path: string; trust: string; n: number }>();
    for (const s of n.allSessions()) {
      const k = `${s.path}/${s.trust}`;
      const c = counts.get(k) ?? { path: s.path, trust: s.trust, n: 0 };
      c.n++;
      counts.set(k, c);
    }
    return [...counts.values()].map((c) => ({ labels: { path: c.path, trust: c.trust }, value: c.n }));
  });
  n.metrics.observe("atlas_bans_active", () => [{ value: n.activeBans() }]);
  n.metrics.observe("atlas_busy_polls_total", () => {
    const b = n.endpoint.busyPolls();
    if (!b) return [];
    return [{ labels: { ended: "io" }, value: b.hits }, {
      labels: { ended: "timeout" },
      value: b.waits - b.hits,
    }];
  });
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
