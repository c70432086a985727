/**
 * `atlas bootstrap [--host H] [--port P]` (the directory node), `atlas relay [--host H] [--port P]`
 * and `atlas net discover` (docs/protocol.md#relay, docs/protocol.md#bootstrap-and-discovery, README.md#commands). Only commander types and small modules load here; the network code is imported lazily.
 */
import type { NodeEnv } from "../../config/env.ts";
import type { ServiceNodeOptions } from "../../daemon/roles.ts";
import type { Ctx } from "../context.ts";
import { formatAge, printListening, shortId, table } from "../output.ts";
import { type AnyCommand, bindHostOption, collect, intOption, parsePort } from "../options.ts";
import type { DiscoverQuery, DiscoverReport } from "../../bootstrap/client.ts";
import type { DiscoverView } from "../../daemon/shapes.ts";

type CtxOf = (cmd: AnyCommand) => Ctx;

type NodeRunner = (env: NodeEnv, o: ServiceNodeOptions) => Promise<void>;

/** A service node's command (`atlas bootstrap`, `atlas relay`): same flags, runs in the foreground. */
function registerNodeCommand(
  program: AnyCommand,
  ctxOfDaemon: CtxOf,
  name: string,
  description: string,
  load: () => Promise<NodeRunner>,
): AnyCommand {
  return program
    .command(name)
    .description(description)
    .option("--host <host>", "bind address: an IP, or a name (its first address is used; default network.host)")
    .option("--port <port>", "UDP port (default network.port; 0 = any)", parsePort)
    .action(async (o, cmd) => {
      const ctx = ctxOfDaemon(cmd);
      const run = await load();
      await run(ctx, {
        host: await bindHostOption(ctx.log, o.host),
        port: o.port,
        onListening: printListening(ctx.out),
      });
    });
}

/** `atlas bootstrap`: run a bootstrap (directory) node in the foreground. */
export function registerBootstrap(
  program: AnyCommand,
  _ctxOf: CtxOf,
  ctxOfDaemon: CtxOf,
): AnyCommand {
  return registerNodeCommand(
    program,
    ctxOfDaemon,
    "bootstrap",
    "run a bootstrap node: a registry of live agents that answers discovery queries",
    async () => (await import("../../daemon/roles.ts")).runBootstrapNode,
  );
}

/** `atlas relay`: run a relay node in the foreground. */
export function registerRelay(program: AnyCommand, ctxOfDaemon: CtxOf): AnyCommand {
  return registerNodeCommand(
    program,
    ctxOfDaemon,
    "relay",
    "run a relay node: pairs agents that cannot reach each other and forwards their encrypted packets",
    async () => (await import("../../daemon/roles.ts")).runRelayNode,
  );
}

/** Run discovery through the home's daemon when one runs, else on a node of this command. */
export async function runDiscover(ctx: Ctx, q: DiscoverQuery): Promise<DiscoverReport> {
  const { isDaemonRunning } = await import("../../daemon/detect.ts");
  if (await isDaemonRunning(ctx.paths)) {
    const { callDaemon } = await import("../../daemon/control-client.ts");
    return callDaemon<DiscoverReport>(ctx.paths, "net.discover", { ...q });
  }
  const { bootstrapTargets, discover, noBootstrapError } = await import("../../bootstrap/client.ts");
  const overrides = { lists: { "network.bootstrap": q.bootstrap ?? [] } };
  // Say what is missing before loading QUIC and opening the store.
  if (bootstrapTargets(await ctx.config(overrides)).length === 0) throw noBootstrapError();
  const { startNode, closeCliNode } = await import("../runtime.ts");
  const node = await startNode(ctx, { listen: false, overrides });
  try {
    return await discover(node, { ...q, bootstrap: [] });
  } finally {
    await closeCliNode(node);
  }
}

function render(ctx: Ctx, r: DiscoverView): void {
  for (const b of r.bootstraps) {
    if (!b.ok) {
      process.stderr.write(`warning: bootstrap node ${b.bootstrap} did not answer: ${b.error?.message ?? "error"}\n`);
    } else if (b.rejected) {
      process.stderr.write(
        `warning: refused ${b.rejected} peer record(s) from ${b.bootstrap}: key or signature does not check out\n`,
      );
    }
  }
  if (ctx.json) return ctx.out.data(r);
  if (r.peers.length === 0) return ctx.out.line("No matching peers.");
  const now = Math.floor(Date.now() / 1000);
  ctx.out.line(
    table(
      ["NODE ID", "NAME", "ADDRESS", "SKILLS", "OPERATOR", "LAST SEEN"],
      r.peers.map((
        p,
      ) => [
        shortId(p.node_id),
        p.name || "-",
        p.address,
        p.skills.join(",") || "-",
        p.operator ? `@${p.operator.username}` : "-",
        formatAge(p.last_seen, now),
      ]),
    ),
  );
}

/** `atlas net discover [--skill S] [--operator NAME] [--limit N] [--bootstrap ADDR]…`. */
export function registerDiscover(net: AnyCommand, ctxOf: CtxOf): AnyCommand {
  return net
    .command("discover")
    .description("ask the bootstrap nodes for agents (by skill and/or operator) and remember them")
    .option("--skill <skill>", "only agents with this skill")
    .option("--operator <name>", "only agents whose verified operator is this Farcaster username (@ optional)")
    .option("--limit <n>", "at most this many agents per bootstrap node (1-500)", intOption("--limit", 1, 500))
    .option(
      "--bootstrap <addr>",
      "bootstrap node to ask besides network.bootstrap (repeatable)",
      collect,
      [] as string[],
    )
    .action(async (o, cmd) => {
      const ctx = ctxOf(cmd);
      const q: DiscoverQuery = { bootstrap: o.bootstrap };
      if (o.skill !== undefined) q.skill = o.skill;
      if (o.operator !== undefined) q.operator = o.operator;
      if (o.limit !== undefined) q.limit = o.limit;
      const { discoverView } = await import("../../daemon/views.ts");
      render(ctx, discoverView(await runDiscover(ctx, q)));
    });
}
