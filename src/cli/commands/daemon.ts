import { DAEMON_STOP_POLL_MS, DAEMON_STOP_WAIT_MS } from "../../config/durations.ts";
import { AtlasError } from "../../errors.ts";
import { sleep } from "../../util/time.ts";
import type { Ctx } from "../context.ts";
import { formatAge, humanTimes, operatorText, pathText, printListening, shortId } from "../output.ts";
import { type AnyCommand, bindHostOption, collect, parsePort } from "../options.ts";
import type { StatusReport } from "../../daemon/ops.ts";

type CtxOf = (cmd: AnyCommand) => Ctx;

/** A command that runs the daemon: `atlas daemon` and its alias `atlas net listen`. */
export function addDaemonCommand(
  parent: AnyCommand,
  name: string,
  description: string,
  ctxOfDaemon: CtxOf,
): AnyCommand {
  return parent
    .command(name)
    .description(description)
    .option("--host <host>", "bind address: an IP, or a name (its first address is used; default network.host)")
    .option("--port <port>", "UDP port (default network.port; 0 = any)", parsePort)
    .option("--bootstrap <addr>", "bootstrap node (repeatable)", collect, [] as string[])
    .option("--relay <addr>", "relay node (repeatable)", collect, [] as string[])
    .action(async (o, cmd) => {
      const ctx = ctxOfDaemon(cmd);
      const { runAgentDaemon } = await import("../../daemon/roles.ts");
      await runAgentDaemon(ctx, {
        ...o,
        host: await bindHostOption(ctx.log, o.host),
        onListening: printListening(ctx.out),
      });
    });
}

/** `atlas daemon [stop]` and `atlas status` (README.md#commands, docs/architecture.md#daemon). */
export function registerDaemon(program: AnyCommand, ctxOf: CtxOf, ctxOfDaemon: CtxOf): void {
  const daemon = addDaemonCommand(
    program,
    "daemon",
    "run the agent daemon in the foreground (`atlas daemon stop` stops it)",
    ctxOfDaemon,
  );

  daemon
    .command("stop")
    .description("ask this home's daemon to shut down, and wait until it has")
    .action(async (_o, cmd) => {
      const ctx = ctxOf(cmd);
      const { isDaemonRunning } = await import("../../daemon/detect.ts");
      if (!(await isDaemonRunning(ctx.paths))) {
        throw new AtlasError("ERR_NOT_RUNNING", `no daemon is running for ${ctx.paths.home}`);
      }
      const { callDaemon } = await import("../../daemon/control-client.ts");
      const { pid } = await callDaemon<{ pid: number }>(ctx.paths, "daemon.stop", {});
      const deadline = Date.now() + DAEMON_STOP_WAIT_MS;
      const { isProcessAlive } = await import("../../daemon/pidfile.ts");
      while (Date.now() < deadline && isProcessAlive(pid)) await sleep(DAEMON_STOP_POLL_MS);
      if (isProcessAlive(pid)) {
        throw new AtlasError("ERR_TIMEOUT", `daemon (pid ${pid}) did not stop within ${DAEMON_STOP_WAIT_MS / 1000} s`);
      }
      if (ctx.json) ctx.out.data({ stopped: true, pid });
      else ctx.out.line(`Stopped daemon (pid ${pid})`);
    });

  program
    .command("status")
    .description("daemon state: node ID, addresses, sessions, outbox depth")
    .action(async (_o, cmd) => {
      const ctx = ctxOf(cmd);
      const { isDaemonRunning } = await import("../../daemon/detect.ts");
      if (!(await isDaemonRunning(ctx.paths))) {
        const { loadIdentity } = await import("../../identity/identity.ts");
        const id = await loadIdentity(ctx.paths);
        if (ctx.json) ctx.out.data({ running: false, node_id: id.nodeId, home: ctx.paths.home });
        else ctx.out.fields([["Node ID", id.nodeId], ["Daemon", "not running (start it with `atlas daemon`)"]]);
        return;
      }
      const { callDaemon } = await import("../../daemon/control-client.ts");
      const r = await callDaemon<StatusReport>(ctx.paths, "status", {});
      if (ctx.json) return ctx.out.data({ running: true, home: ctx.paths.home, ...r });
      renderStatus(ctx, r);
    });
}

/** `198.51.100.1:4433 registered, 198.51.100.2:4433 failing (why)`, or `none`. */
function relaysText(r: StatusReport): string {
  const rs = r.relays ?? [];
  const pipes = r.relay_pipes && r.relay_pipes.open > 0
    ? `; ${r.relay_pipes.open} relayed connection${r.relay_pipes.open === 1 ? "" : "s"} open`
    : "";
  if (rs.length === 0) return `none${pipes}`;
  return rs.map((x) =>
    `${x.relay} ${
      x.registered
        ? `registered${x.leg === "tcp" ? " over TCP" : ""}`
        : `not registered${x.last_error ? ` (${humanTimes(x.last_error)})` : ""}`
    }`
  ).join("; ") + pipes;
}

function renderStatus(ctx: Ctx, r: StatusReport): void {
  const now = Date.now() / 1000;
  ctx.out.fields([
    ["Node ID", r.node_id],
    ["Daemon", `running (pid ${r.pid}, up ${r.uptime_s} s)`],
    [
      "Listen",
      `${r.listen_address} (advertised: ${r.listen_addrs.join(", ") || "-"})${
        r.datagram_io ? `, ${r.datagram_io} UDP I/O` : ""
      }`,
    ],
    [
      "Public",
      r.public_address ? `${r.public_address} (${r.public_address_source})` : `unknown: ${r.public_address_source}`,
    ],
    ["Sessions", String(r.sessions.length)],
    ["Relays", relaysText(r)],
    ...(r.relay_server
      ? [
        [
          "Relaying",
          `${r.relay_server.registered} agents registered, ${r.relay_server.pipes}/${r.relay_server.capacity} pipes, ${r.relay_server.forwarded_packets} packets forwarded, ${
            r.relay_server.dropped_rate_limit + r.relay_server.dropped_queue_full
          } dropped, ${r.relay_server.pipes_refused} pairings refused (${
            r.relay_server.refused.target_busy ?? 0
          } target busy)`,
        ] as [string, string],
      ]
      : []),
    ...(r.tcp_leg
      ? [[
        "TCP leg",
        `port ${r.tcp_leg.port}, ${r.tcp_leg.connections} connections, ${r.tcp_leg.accepted} accepted, ${
          r.tcp_leg.refused_limit + r.tcp_leg.refused_per_ip + r.tcp_leg.refused_rate
        } refused`,
      ] as [string, string]]
      : []),
    ["Outbox", `${r.outbox_depth} queued`],
    [
      "Hub",
      `farcaster.verify=${r.farcaster.verify}; ${
        r.farcaster.hub
          ? `${r.farcaster.hub.url} ${
            r.farcaster.hub.reachable === null
              ? "not asked yet"
              : r.farcaster.hub.reachable
              ? "reachable"
              : `unreachable (${r.farcaster.hub.last_error ?? "error"})`
          }`
          : "not asked yet"
      }`,
    ],
  ]);
  for (const s of r.sessions) {
    const rtt = s.rtt_ms === null ? "-" : `${s.rtt_ms.toFixed(2)} ms`;
    const op = s.operator ? `  ${operatorText(s.operator)}` : "";
    ctx.out.line(
      `  ${shortId(s.node_id)}  ${s.name || "-"}  [${s.trust} via ${pathText(s)}]  ${s.direction}  age ${
        formatAge(now - s.age_s, now).replace(" ago", "")
      }  rtt ${rtt}${s.pinned ? "  pinned" : ""}${op}`,
    );
  }
  // docs/protocol.md#hole-punching: a session that stays relayed says why.
  for (const p of r.hole_punch ?? []) {
    if (p.state === "direct") continue;
    const why = p.last_error ? ` (${p.last_error})` : "";
    ctx.out.line(`  hole punch ${shortId(p.node_id)}: ${p.state} after ${p.attempts} attempt(s)${why}`);
  }
}
