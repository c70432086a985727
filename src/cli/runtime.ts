import type { ConfigOverrides } from "../config/load.ts";
import type { AtlasNode } from "../net/node.ts";
import type { Ctx } from "./context.ts";

/**
 * Load identity, profile, config and store, and start a node. Imported lazily by the commands
 * that need the network, so `--help`/`--version` never load QUIC or libSQL.
 */
export async function startNode(ctx: Ctx, o: { listen: boolean; host?: string; port?: number; overrides?: ConfigOverrides }): Promise<AtlasNode> {
  const { loadIdentity } = await import("../identity/identity.ts");
  const { loadProfile } = await import("../identity/profile.ts");
  const identity = await loadIdentity(ctx.paths);
  const profile = await loadProfile(ctx.paths);
  const config = await ctx.config(o.overrides);
  const { openStore } = await import("../store/index.ts");
  const store = await openStore(ctx.paths.dbFile);
  const { AtlasNode } = await import("../net/node.ts");
  try {
    return await AtlasNode.start({ config, identity, profile, store, listen: o.listen, host: o.host, port: o.port, log: ctx.log });
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
