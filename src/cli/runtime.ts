import type { ConfigOverrides } from "../config/load.ts";
import type { AtlasNode } from "../net/node.ts";
import { startNode } from "../daemon/start-node.ts";
import type { Ctx } from "./context.ts";

/** Moved to daemon/ (a node runs without the CLI); re-exported for the commands that load this module. */
export { startNode };

/** Close a one-shot command's node: its sessions end with close_reason 'cli_exit' (docs/protocol.md#dialing). */
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
  const { withSpinner } = await import("./spinner.ts");
  const waiting = `waiting for ${String(args.target ?? "the peer")}…`;
  if (await isDaemonRunning(ctx.paths)) {
    const { callDaemon } = await import("../daemon/control-client.ts");
    return withSpinner(waiting, () => callDaemon<T>(ctx.paths, op, args));
  }
  const node = await startNode(ctx, { listen: false, overrides });
  try {
    return await withSpinner(waiting, () => standalone(node));
  } finally {
    await closeCliNode(node);
  }
}
