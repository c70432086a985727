import type { ConfigOverrides } from "../config/load.ts";
import type { AtlasNode } from "../net/node.ts";
import type { Ctx } from "./context.ts";

/**
 * Load identity, profile, config and store, and start a node. Imported lazily by the commands
 * that need the network, so `--help`/`--version` never load QUIC or libSQL.
 */
export async function startNode(
  ctx: Ctx,
  o: { listen: boolean; host?: string; port?: number; overrides?: ConfigOverrides },
): Promise<AtlasNode> {
  const { loadIdentity } = await import("../identity/identity.ts");
  const { loadProfile } = await import("../identity/profile.ts");
  const identity = await loadIdentity(ctx.paths);
  const profile = await loadProfile(ctx.paths);
  const config = await ctx.config(o.overrides);
  const { openStore } = await import("../store/index.ts");
  const store = await openStore(ctx.paths.dbFile);
  const { AtlasNode } = await import("../net/node.ts");
  try {
    return await AtlasNode.start({
      config,
      identity,
      profile,
      store,
      listen: o.listen,
      host: o.host,
      port: o.port,
      log: ctx.log,
    });
  } catch (e) {
    await store.close();
    throw e;
  }
}

/** Close a one-shot command's node: its sessions end with close_reason 'cli_exit' (SPEC §7). */
export async function closeCliNode(node: AtlasNode): Promise<void> {
  await node.close("DISCONNECT_SHUTDOWN", "client exited", "cli_exit");
  await node.store.close();
}

/**
 * Run a peer operation: through the home's daemon when one runs (sharing its identity, port and
 * live sessions), else on a node of this process that lives for this command only.
 */
export async function runPeerOp<T>(
  ctx: Ctx,
  op: string,
  args: Record<string, unknown>,
  standalone: (node: AtlasNode) => Promise<T>,
  overrides?: ConfigOverrides,
): Promise<T> {
  const { isDaemonRunning } = await import("../daemon/detect.ts");
  if (await isDaemonRunning(ctx.paths)) {
    const { callDaemon } = await import("../daemon/control-client.ts");
    return callDaemon<T>(ctx.paths, op, args);
  }
  const node = await startNode(ctx, { listen: false, overrides });
  try {
    return await standalone(node);
  } finally {
    await closeCliNode(node);
  }
}
