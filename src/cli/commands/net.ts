import type { Command } from "@commander-js/extra-typings";
import { AtlasError } from "../../errors.ts";
import type { Ctx } from "../context.ts";
import type { AtlasNode } from "../../net/node.ts";
import type { Session } from "../../net/session.ts";
import { formatAge, table } from "../output.ts";

type CtxOf = (cmd: Command<any, any, any>) => Ctx;
const short = (id: string) => id.slice(0, 18) + "…";

function pathText(s: { path: string; relay?: string }): string {
  return s.path === "relay" && s.relay ? `relay (${s.relay})` : s.path;
}

function parseCount(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 100000) throw new AtlasError("ERR_USAGE", `--count must be an integer from 1 to 100000, got '${v}'`);
  return n;
}

function parseMs(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0 || n > 3_600_000) throw new AtlasError("ERR_USAGE", `${name} must be a number of milliseconds, got '${v}'`);
    return n;
  };
}

function parsePort(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new AtlasError("ERR_USAGE", `--port must be an integer from 0 to 65535, got '${v}'`);
  return n;
}

const collect = (v: string, prev: string[]) => [...prev, v];

/** A one-shot command's node: dial `target`, run `fn` on the session, always close the node. */
async function withSession<T>(ctx: Ctx, target: string, fn: (s: Session, node: AtlasNode) => Promise<T>): Promise<T> {
  const { startNode, closeCliNode } = await import("../runtime.ts");
  const { dialPeer } = await import("../../net/dial.ts");
  const node = await startNode(ctx, { listen: false });
  try {
    const { session } = await dialPeer(node, target);
    return await fn(session, node);
  } finally {
    await closeCliNode(node);
  }
}

/** `count` Pings `interval` ms apart: Peer/Path, Ping/Pong of the first, one RTT line each, summary. */
async function pingLoop(ctx: Ctx, s: Session, timeoutMs: number, count: number, interval: number): Promise<void> {
  const rtts: number[] = [];
  let first: { pingTs: number; pongTs: number } | null = null;
  let lastErr: unknown = null;
  if (!ctx.json) ctx.out.fields([["Peer", short(s.nodeId)], ["Path", pathText(s)]], 4);
  for (let i = 0; i < count; i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, interval));
    try {
      const r = await s.ping(timeoutMs);
      rtts.push(r.rttMs);
      if (!first) {
        first = r;
        if (!ctx.json) ctx.out.fields([["Ping", String(r.pingTs)], ["Pong", String(r.pongTs)]], 4);
      }
      if (!ctx.json) ctx.out.fields([["RTT", `${r.rttMs.toFixed(2)} ms`]], 4);
    } catch (e) {
      lastErr = e;
      if (!ctx.json) ctx.out.fields([["RTT", "timeout"]], 4);
      if (!s.isOpen) break;
    }
  }
  const sorted = [...rtts].sort((a, b) => a - b);
  const med = sorted.length ? sorted[Math.floor((sorted.length - 1) / 2)]! : 0;
  const sum = { sent: count, received: rtts.length, min_ms: sorted[0] ?? null, median_ms: sorted.length ? med : null, max_ms: sorted[sorted.length - 1] ?? null };
  if (ctx.json) ctx.out.data({ peer: s.nodeId, name: s.peer.name, trust: s.trust, path: s.path, relay: s.relay ?? null, ping_ts: first?.pingTs ?? null, pong_ts: first?.pongTs ?? null, rtt_ms: rtts, ...sum });
  else if (sorted.length) ctx.out.line(`min/median/max ${sorted[0]!.toFixed(2)}/${med.toFixed(2)}/${sorted[sorted.length - 1]!.toFixed(2)} ms, ${count} sent, ${rtts.length} received`);
  else ctx.out.line(`${count} sent, 0 received`);
  if (rtts.length === 0) throw lastErr instanceof AtlasError ? lastErr : new AtlasError("ERR_TIMEOUT", "no Pong received");
}

/** The foreground listener: answers handshakes, Ping and Disconnect until SIGINT/SIGTERM. */
export async function runListener(ctx: Ctx, o: { host?: string; port?: number; bootstrap: string[]; relay: string[] }): Promise<void> {
  const { startNode } = await import("../runtime.ts");
  const node = await startNode(ctx, { listen: true, host: o.host, port: o.port, overrides: { lists: { "network.bootstrap": o.bootstrap, "network.relays": o.relay } } });
  const crashed = await node.store.sessions.closeAllOpen("crash", Math.floor(Date.now() / 1000));
  if (crashed > 0) ctx.log.info("closed session rows left open by a crash", { count: crashed });
  const { formatAddr } = await import("../../transport/addr.ts");
  const addr = formatAddr(node.endpoint.local);
  if (ctx.json) ctx.out.data({ event: "listening", node_id: node.nodeId, address: addr, listen_addrs: node.card.listenAddrs });
  else ctx.out.line(`Listening on ${addr} as ${node.nodeId}`);
  ctx.log.info("listening", { address: addr, node_id: node.nodeId });
  await new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      ctx.log.info("shutting down", { signal: sig });
      process.off("SIGINT", onInt);
      process.off("SIGTERM", onTerm);
      resolve();
    };
    const onInt = () => stop("SIGINT");
    const onTerm = () => stop("SIGTERM");
    process.on("SIGINT", onInt);
    process.on("SIGTERM", onTerm);
  });
  const hard = setTimeout(() => process.exit(0), 4500); // SPEC §16: exit within 5 s whatever happens
  hard.unref();
  await node.close("DISCONNECT_SHUTDOWN", "node shutting down", "shutdown");
  await node.store.close();
}

/** `atlas net …` peer commands (SPEC §7, §14). */
export function registerNet(program: Command<any, any, any>, ctxOf: CtxOf, ctxOfListener: CtxOf): Command<any, any, any> {
  const net = program.command("net").description("peer commands");

  net.command("listen")
    .description("run a foreground listener (alias of `atlas daemon`)")
    .option("--host <host>", "bind address (default network.host)")
    .option("--port <port>", "UDP port (default network.port; 0 = any)", parsePort)
    .option("--bootstrap <addr>", "bootstrap node (repeatable)", collect, [] as string[])
    .option("--relay <addr>", "relay node (repeatable)", collect, [] as string[])
    .action(async (o, cmd) => runListener(ctxOfListener(cmd), o));

  net.command("connect")
    .description("dial a peer and run the handshake")
    .argument("<target>", "host:port, node ID (or unique prefix), or atlas_<id>@host:port")
    .action(async (target: string, _o, cmd) => {
      const ctx = ctxOf(cmd);
      await withSession(ctx, target, async (s) => {
        if (ctx.json) ctx.out.data({ node_id: s.nodeId, name: s.peer.name, trust: s.trust, path: s.path, relay: s.relay ?? null, address: s.remoteAddress });
        else {
          ctx.out.line(`Connected to ${s.nodeId}`);
          ctx.out.line(`${s.peer.name || "(unnamed)"} [${s.trust} via ${s.path}]`);
        }
      });
    });

  net.command("ping")
    .description("Ping a peer over a verified session")
    .argument("<target>")
    .option("--count <n>", "number of pings", parseCount, 1)
    .option("--interval <ms>", "milliseconds between pings", parseMs("--interval"), 1000)
    .action(async (target: string, o, cmd) => {
      const ctx = ctxOf(cmd);
      await withSession(ctx, target, (s, node) => pingLoop(ctx, s, node.config.transport.request_timeout * 1000, o.count, o.interval));
    });

  net.command("disconnect")
    .description("send Disconnect (operator requested disconnect) to a peer")
    .argument("<target>")
    .action(async (target: string, _o, cmd) => {
      const ctx = ctxOf(cmd);
      await withSession(ctx, target, async (s) => {
        await s.disconnect("DISCONNECT_SHUTDOWN", "operator requested disconnect");
        if (ctx.json) ctx.out.data({ node_id: s.nodeId, disconnected: true, reason: "DISCONNECT_SHUTDOWN" });
        else ctx.out.line(`Disconnected from ${s.nodeId}`);
      });
    });

  net.command("peers")
    .description("list known peers")
    .option("--trust <level>", "only peers with this trust level (bootstrap, unknown, verified, relay)")
    .option("--skill <skill>", "only peers with this skill")
    .action(async (o, cmd) => {
      const ctx = ctxOf(cmd);
      if (o.trust && !["bootstrap", "unknown", "verified", "relay"].includes(o.trust)) throw new AtlasError("ERR_USAGE", `invalid --trust '${o.trust}': expected bootstrap, unknown, verified or relay`);
      const { openStore } = await import("../../store/index.ts");
      const store = await openStore(ctx.paths.dbFile);
      try {
        const rows = await store.peers.list({ trust: o.trust, skill: o.skill?.toLowerCase() });
        const now = Math.floor(Date.now() / 1000);
        if (ctx.json) {
          ctx.out.data(rows.map((r) => ({ ...r, public_key: r.public_key ? Buffer.from(r.public_key).toString("hex") : null, banned: r.ban_until !== null && r.ban_until > now })));
          return;
        }
        if (rows.length === 0) return ctx.out.line("No known peers.");
        ctx.out.line(
          table(
            ["NODE ID", "NAME", "ADDRESS", "TRUST", "LAST SEEN", "LAST FAILURE", "BAN"],
            rows.map((r) => [
              short(r.node_id),
              r.name ?? "-",
              r.address ?? r.public_address ?? "-",
              r.trust_level,
              formatAge(r.last_seen, now),
              r.last_failure ? `${r.last_failure} (${formatAge(r.last_failure_at, now)})` : "-",
              r.ban_until && r.ban_until > now ? `until ${new Date(r.ban_until * 1000).toISOString()}` : "-",
            ]),
          ),
        );
      } finally {
        await store.close();
      }
    });
  return net;
}
