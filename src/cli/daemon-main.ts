import type { Ctx } from "./context.ts";
import type { DaemonOptions } from "../daemon/daemon.ts";

/**
 * `atlas daemon` / `atlas net listen`: the daemon with every service this build has.
 * Kept apart from the command table so `--help` never loads the daemon's modules.
 */
export async function startDaemon(ctx: Ctx, o: DaemonOptions): Promise<void> {
  const { runDaemon } = await import("../daemon/daemon.ts");
  await runDaemon(ctx, o);
}
