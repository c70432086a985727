import { DEVNET_STOP_MS } from "../../config/durations.ts";
import type { Ctx } from "../context.ts";
import { shortId, table } from "../output.ts";
import { type AnyCommand, intOption } from "../options.ts";

type CtxOf = (cmd: AnyCommand) => Ctx;

/** `atlas devnet up --nodes N` / `atlas devnet down` (src/devnet/devnet.ts; docs/operating.md "A devnet"). */
export function registerDevnet(program: AnyCommand, ctxOf: CtxOf): AnyCommand {
  const devnet = program
    .command("devnet")
    .description("a local test network on 127.0.0.1: N daemons, a relay and a bootstrap node");

  devnet
    .command("up")
    .description("start the devnet in the background; returns once every daemon is registered")
    .option("--nodes <n>", "agent daemons to start (1-32, default 3)", intOption("--nodes", 1, 32), 3)
    .option("--dir <dir>", "where the homes and devnet.json live (default $TMPDIR/atlas-devnet-<user>)")
    .option("--metrics", "serve Prometheus metrics from every node on a free 127.0.0.1 port")
    .action(async (o, cmd) => {
      const ctx = ctxOf(cmd);
      const { devnetUp, defaultDevnetDir } = await import("../../devnet/devnet.ts");
      const r = await devnetUp({ dir: o.dir ?? defaultDevnetDir(), nodes: o.nodes, metrics: !!o.metrics });
      if (ctx.json) return ctx.out.data(r);
      const daemons = r.nodes.filter((n) => n.role === "daemon").length;
      ctx.out.line(
        `Devnet up in ${(r.ready_ms / 1000).toFixed(1)} s: ${daemons} daemon${
          daemons === 1 ? "" : "s"
        }, a relay and a bootstrap node on 127.0.0.1, every daemon registered with both`,
      );
      ctx.out.line(
        table(
          ["NAME", "ROLE", "NODE ID", "ADDRESS", "PID", "HOME"],
          r.nodes.map((n) => [n.name, n.role, shortId(n.node_id), n.address, String(n.pid), n.home]),
        ).replace(/\n$/, ""),
      );
      ctx.out.line(`Try  : ${r.try}`);
      ctx.out.line(`Stop : atlas devnet down --dir ${r.dir}`);
    });

  devnet
    .command("down")
    .description("stop every process of the devnet and remove its directory")
    .option("--dir <dir>", "the devnet's directory (default $TMPDIR/atlas-devnet-<user>)")
    .option("--keep", "leave the homes, logs and databases in place")
    .action(async (o, cmd) => {
      const ctx = ctxOf(cmd);
      const { devnetDown, defaultDevnetDir } = await import("../../devnet/devnet.ts");
      const r = await devnetDown({ dir: o.dir ?? defaultDevnetDir(), keep: !!o.keep });
      if (ctx.json) return ctx.out.data(r);
      ctx.out.line(
        `Devnet down: ${r.stopped} process${r.stopped === 1 ? "" : "es"} stopped${
          r.killed ? ` (${r.killed} killed after ${DEVNET_STOP_MS / 1000} s)` : ""
        }; ${r.removed ? `${r.dir} removed` : `homes kept in ${r.dir}`}`,
      );
    });
  return devnet;
}
