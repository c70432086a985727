import { Option } from "@commander-js/extra-typings";
import { AtlasError, type ErrorCodeName } from "../../errors.ts";
import type { Ctx } from "../context.ts";
import type { BanResult, PingReport } from "../../daemon/ops.ts";
import { formatAge, isoTime, operatorText, pathText, shortId, table, whenText } from "../output.ts";
import { type AnyCommand, intOption } from "../options.ts";
import { runPeerOp } from "../runtime.ts";
import { addDaemonCommand } from "./daemon.ts";

type CtxOf = (cmd: AnyCommand) => Ctx;

/** `--trust` values of `net peers` (docs/protocol.md#trust-rate-limits-and-bans), offered by shell completion. */
const TRUST_LEVELS = ["bootstrap", "unknown", "verified", "relay"] as const;

function parseMs(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0 || n > 3_600_000) {
      throw new AtlasError("ERR_USAGE", `${name} must be a number of milliseconds, got '${v}'`);
    }
    return n;
  };
}

/** Bans need only the store when no daemon runs (there are no live sessions to close). */
async function runBanOp(
  ctx: Ctx,
  op: "net.ban" | "net.unban",
  args: { target: string; seconds?: number },
): Promise<BanResult> {
  const { isDaemonRunning } = await import("../../daemon/detect.ts");
  if (await isDaemonRunning(ctx.paths)) {
    const { callDaemon } = await import("../../daemon/control-client.ts");
    return callDaemon<BanResult>(ctx.paths, op, args);
  }
  const { openStore } = await import("../../store/index.ts");
  const { resolvePeerId } = await import("../../net/target.ts");
  const store = await openStore(ctx.paths.dbFile);
  try {
    const id = await resolvePeerId(store, args.target);
    const until = op === "net.ban" ? Math.floor(Date.now() / 1000) + args.seconds! : null;
    await store.peers.setBan(id, until);
    return { node_id: id, ban_until: until, disconnected: 0 };
  } finally {
    await store.close();
  }
}

/** `90s`, `10m`, `2h`, `7d` or plain seconds. */
export function parseDuration(v: string): number {
  const m = /^(\d+)\s*([smhd]?)$/.exec(v.trim());
  if (!m || Number(m[1]) <= 0) {
    throw new AtlasError("ERR_USAGE", `invalid duration '${v}': expected e.g. 90s, 10m, 2h, 7d or a number of seconds`);
  }
  return Number(m[1]) * ({ "": 1, s: 1, m: 60, h: 3600, d: 86400 } as Record<string, number>)[m[2]!]!;
}

/** Peer/Path, Ping/Pong of the first Pong, one RTT line per Ping, and the summary (README.md#commands). */
function renderPing(ctx: Ctx, r: PingReport): void {
  if (ctx.json) ctx.out.data(r);
  else {
    ctx.out.fields([["Peer", shortId(r.node_id)], ["Path", pathText(r)]], 4);
    // README.md#commands shows the Ping/Pong times as full ISO-8601 (the JSON report has the epoch seconds).
    const iso = (t: number | null) => (t === null ? "-" : new Date(t * 1000).toISOString());
    if (r.ping_ts !== null) ctx.out.fields([["Ping", iso(r.ping_ts)], ["Pong", iso(r.pong_ts)]], 4);
    r.rtt_ms.forEach((t, i) => {
      for (const c of r.path_changes.filter((c) => c.before_ping === i)) ctx.out.fields([["Path", pathText(c)]], 4);
      ctx.out.fields([["RTT", t === null ? "timeout" : `${t.toFixed(2)} ms`]], 4);
    });
    if (r.received > 0) {
      ctx.out.line(
        `min/median/max ${r.min_ms!.toFixed(2)}/${r.median_ms!.toFixed(2)}/${
          r.max_ms!.toFixed(2)
        } ms, ${r.sent} sent, ${r.received} received`,
      );
    } else ctx.out.line(`${r.sent} sent, 0 received`);
  }
  if (r.error) throw new AtlasError(r.error.code as ErrorCodeName, r.error.message, { exit: r.error.exit });
}

/** `atlas net …` peer commands (docs/protocol.md#dialing, README.md#commands). */
export function registerNet(program: AnyCommand, ctxOf: CtxOf, ctxOfDaemon: CtxOf): AnyCommand {
  const net = program.command("net").description("peer commands");

  addDaemonCommand(net, "listen", "run the agent daemon in the foreground (alias of `atlas daemon`)", ctxOfDaemon);

  net.command("connect")
    .description("dial a peer and run the handshake")
    .argument("<target>", "host:port, node ID (or unique prefix), or atlas_<id>@host:port")
    .action(async (target: string, _o, cmd) => {
      const ctx = ctxOf(cmd);
      const { connectOp } = await import("../../daemon/ops.ts");
      const r = await runPeerOp(ctx, "net.connect", { target }, (node) => connectOp(node, { target }));
      if (ctx.json) ctx.out.data(r);
      else {
        ctx.out.line(`Connected to ${r.node_id}`);
        ctx.out.line(`${r.name || "(unnamed)"} [${r.trust} via ${pathText(r)}]`);
        if (r.operator) ctx.out.line(`Operator : ${operatorText(r.operator)}`);
      }
    });

  net.command("ping")
    .description("Ping a peer over a verified session")
    .argument("<target>")
    .option("--count <n>", "number of pings", intOption("--count", 1, 100000), 1)
    .option("--interval <ms>", "milliseconds between pings", parseMs("--interval"), 1000)
    .action(async (target: string, o, cmd) => {
      const ctx = ctxOf(cmd);
      const { pingOp } = await import("../../daemon/ops.ts");
      const args = { target, count: o.count, interval: o.interval };
      renderPing(ctx, await runPeerOp(ctx, "net.ping", args, (node) => pingOp(node, args)));
    });

  net.command("disconnect")
    .description("close the live sessions with a peer (Disconnect: operator requested); dials nothing")
    .argument("<target>")
    .action(async (target: string, _o, cmd) => {
      const ctx = ctxOf(cmd);
      const { disconnectOp } = await import("../../daemon/ops.ts");
      const r = await runPeerOp(ctx, "net.disconnect", { target }, (node) => disconnectOp(node, { target }));
      if (ctx.json) ctx.out.data(r);
      else if (r.sessions === 0) ctx.out.line(`No session with ${r.node_id ?? target}: nothing to disconnect`);
      else ctx.out.line(`Disconnected from ${r.node_id} (${r.sessions} session${r.sessions === 1 ? "" : "s"})`);
    });

  net.command("ban")
    .description("ban a peer: its handshakes are refused and live sessions closed")
    .argument("<target>", "node ID or unique prefix")
    .option("--for <duration>", "how long: 90s, 10m, 2h, 7d or seconds (default security.ban_duration_secs)")
    .action(async (target: string, o, cmd) => {
      const ctx = ctxOf(cmd);
      const seconds = o.for === undefined ? (await ctx.config()).security.ban_duration_secs : parseDuration(o.for);
      const r = await runBanOp(ctx, "net.ban", { target, seconds });
      if (ctx.json) ctx.out.data(r);
      else ctx.out.line(`Banned ${r.node_id} until ${whenText(r.ban_until!)}`);
    });

  net.command("unban")
    .description("lift a ban")
    .argument("<target>", "node ID or unique prefix")
    .action(async (target: string, _o, cmd) => {
      const ctx = ctxOf(cmd);
      const r = await runBanOp(ctx, "net.unban", { target });
      if (ctx.json) ctx.out.data(r);
      else ctx.out.line(`Unbanned ${r.node_id}`);
    });

  net.command("peers")
    .description("list known peers")
    .addOption(new Option("--trust <level>", "only peers with this trust level").choices(TRUST_LEVELS))
    .option("--skill <skill>", "only peers with this skill")
    .action(async (o, cmd) => {
      const ctx = ctxOf(cmd);
      const { openStore } = await import("../../store/index.ts");
      const store = await openStore(ctx.paths.dbFile);
      try {
        const rows = await store.peers.list({ trust: o.trust, skill: o.skill?.toLowerCase() });
        const paths = await store.sessions.latestPaths();
        const now = Math.floor(Date.now() / 1000);
        if (ctx.json) {
          const { peerView } = await import("../../daemon/views.ts");
          return ctx.out.data(rows.map((r) => peerView(r, paths.get(r.node_id), now)));
        }
        if (rows.length === 0) return ctx.out.line("No known peers.");
        ctx.out.line(
          table(
            ["NODE ID", "NAME", "ADDRESS", "TRUST", "OPERATOR", "LAST SEEN", "LAST FAILURE", "BAN"],
            rows.map((r) => [
              shortId(r.node_id),
              r.name ?? "-",
              r.address ?? r.public_address ?? "-",
              // docs/protocol.md#trust-rate-limits-and-bans: trust beside the path of the latest session, e.g. `relay via relay (atlas_…@…)`
              paths.has(r.node_id) ? `${r.trust_level} via ${pathText(paths.get(r.node_id)!)}` : r.trust_level,
              r.operator_username ? `@${r.operator_username}${r.operator_fid ? ` (fid ${r.operator_fid})` : ""}` : "-",
              formatAge(r.last_seen, now),
              r.last_failure ? `${r.last_failure} (${formatAge(r.last_failure_at, now)})` : "-",
              r.ban_until && r.ban_until > now ? `until ${isoTime(r.ban_until)}` : "-",
            ]),
          ),
        );
      } finally {
        await store.close();
      }
    });
  return net;
}
