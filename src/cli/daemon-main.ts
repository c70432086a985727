import type { Ctx } from "./context.ts";
import type { DaemonOptions } from "../daemon/daemon.ts";

/**
 * `atlas daemon` / `atlas net listen`: the daemon with every service this build has — inbox,
 * outbox worker, inbox pruning (keepalive and the control socket come with the daemon itself).
 * Kept apart from the command table so `--help` never loads the daemon's modules.
 */
export async function startDaemon(ctx: Ctx, o: DaemonOptions): Promise<void> {
  const { runDaemon } = await import("../daemon/daemon.ts");
  const { serveInbox, pruneInbox, enqueueMessage } = await import("../net/messaging.ts");
  const { OutboxWorker } = await import("../net/outbox-worker.ts");
  await runDaemon(ctx, o, async (node, handlers, services) => {
    serveInbox(node);
    const outbox = new OutboxWorker(node, ctx.log);
    services.push(outbox);
    handlers.set("outbox.kick", async () => (outbox.kick(), { ok: true }));
    const { addBootstrapClient } = await import("../bootstrap/client.ts");
    addBootstrapClient(node, handlers, services, { log: ctx.log });
    handlers.set("net.send", async (a) => {
      const r = await enqueueMessage(node.store, node.config, { target: String(a.target), body: String(a.body), topic: a.topic as string | null, reply_to: a.reply_to as string | null });
      outbox.kick();
      return r;
    });
    let prune: ReturnType<typeof setInterval> | undefined;
    services.push({
      start: () => {
        const run = () => void pruneInbox(node.store, node.config).catch((e) => ctx.log.warn("inbox pruning failed", { error: (e as Error).message }));
        run();
        prune = setInterval(run, 3600_000);
        prune.unref();
      },
      stop: () => clearInterval(prune),
    });
  });
}
