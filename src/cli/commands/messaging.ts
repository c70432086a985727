/**
 * `atlas net send`, `net inbox`, `net outbox` (README.md#commands).
 *
 * - send: with a daemon running, the message is committed to the outbox table (the daemon's
 *   outbox worker polls it) and the command prints `Queued`/`Target`; without one, the command
 *   dials and delivers it itself and prints `Sent to`/`Msg ID`/`Ack`.
 * - inbox: reads the inbox table (with or without a daemon: WAL lets readers run beside the
 *   writer); `--follow` polls for rows stored after the last one shown.
 * - outbox: the queue and the latest outcomes from `deliveries`.
 *
 * JSON output of messages (`net inbox --json`, one object per line) carries `body` as the JSON
 * value itself, spliced in verbatim (whitespace outside strings removed so that it stays on one
 * line): nothing is re-serialised, so big integers keep every digit. `seq` is the inbox row
 * number, a resume cursor for `--after`.
 */
import { FOLLOW_POLL_MS } from "../../config/durations.ts";
import type { InboxRow, Store } from "../../store/index.ts";
import type { QueuedResult } from "../../net/messaging.ts";
import type { Ctx } from "../context.ts";
import type { DeliveryView } from "../../daemon/shapes.ts";
import { humanTimes, isoTime, pathText, relTime, shortId, table } from "../output.ts";
import { type AnyCommand, intOption } from "../options.ts";

type CtxOf = (cmd: AnyCommand) => Ctx;
/** Labels of `net send` are padded to one column of this width (README.md#commands). */
const SEND_LABEL_WIDTH = 8;

/** Control characters (terminal escapes) in peer-chosen text shown to humans, made visible. */
function safeText(s: string): string {
  // deno-lint-ignore no-control-regex -- matching the C0 and C1 control characters is the point
  return s.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
}

async function withStore<T>(ctx: Ctx, fn: (store: Store) => Promise<T>): Promise<T> {
  const { openStore } = await import("../../store/index.ts");
  const store = await openStore(ctx.paths.dbFile);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

// ---------------------------------------------------------------------------------------------
// inbox output

/** One JSON line for an inbox row; `body` is the stored JSON text itself (lossless). */
export async function inboxJsonLine(r: InboxRow): Promise<string> {
  const { compactJson } = await import("../../net/messaging.ts");
  const { isJsonText } = await import("../../wire/json-text.ts");
  const head = JSON.stringify({
    seq: r.rowid,
    id: r.id,
    from: r.from_id,
    to: r.to_id,
    timestamp: r.timestamp,
    reply_to: r.reply_to,
    topic: r.topic,
  });
  const body = isJsonText(r.body) ? compactJson(r.body) : JSON.stringify(r.body);
  return `${head.slice(0, -1)},"body":${body},"received_at":${r.received_at}}`;
}

function inboxHuman(r: InboxRow): string {
  const parts = [isoTime(r.received_at), `from ${shortId(r.from_id)}`];
  if (r.topic !== null) parts.push(`topic ${safeText(r.topic)}`);
  if (r.reply_to !== null) parts.push(`re ${r.reply_to}`);
  parts.push(r.id);
  const body = r.body.split(/\r?\n/).map((l) => "  " + l).join("\n");
  return parts.join("  ") + "\n" + body;
}

// ---------------------------------------------------------------------------------------------

/** `net send --json` with a daemon: the same shape as a delivered one, the delivery fields null. */
function queuedView(msgId: string, target: string): DeliveryView {
  return {
    msg_id: msgId,
    target,
    queued: true,
    node_id: null,
    name: null,
    trust: null,
    path: null,
    relay: null,
    ack: null,
  };
}

/** `atlas net send|inbox|outbox` (README.md#commands), added to the `net` command. */
export function registerMessaging(net: AnyCommand, ctxOf: CtxOf): void {
  net.command("send")
    .description("send a message: queued for the daemon when one runs, else delivered directly")
    .argument("<target>", "node ID (or unique prefix), atlas_<id>@host:port, or host:port")
    .argument("<body>", "JSON text; anything else is sent as a JSON string (use -- before a body starting with '-')")
    .option("--topic <topic>", "topic (at most 128 bytes)")
    .option("--reply-to <msg_id>", "ID of the message this one answers")
    .action(async (target: string, text: string, o, cmd) => {
      const ctx = ctxOf(cmd);
      const { normalizeBody, checkOutgoing, newMessageId, resolveSendTarget, shortTarget, sendDirect } = await import(
        "../../net/messaging.ts"
      );
      const body = normalizeBody(text);
      const replyTo = o.replyTo?.toLowerCase();
      checkOutgoing(body, { topic: o.topic, replyTo });
      const { isDaemonRunning } = await import("../../daemon/detect.ts");
      if (await isDaemonRunning(ctx.paths)) {
        // The daemon commits the row to its outbox before it answers: that is the hand-over
        // (and this process never loads libSQL, so `send` stays about as quick as `--version`).
        const { callDaemon } = await import("../../daemon/control-client.ts");
        const { msg_id: msgId, target: canonical } = await callDaemon<QueuedResult>(ctx.paths, "net.send", {
          target,
          body,
          topic: o.topic ?? null,
          reply_to: replyTo ?? null,
        });
        if (ctx.json) ctx.out.data(queuedView(msgId, canonical));
        else ctx.out.fields([["Queued", msgId], ["Target", shortTarget(canonical)]], SEND_LABEL_WIDTH);
        return;
      }
      const { startNode, closeCliNode } = await import("../runtime.ts");
      const node = await startNode(ctx, { listen: false });
      try {
        const canonical = await resolveSendTarget(node.store, target);
        const msgId = newMessageId();
        let r: Awaited<ReturnType<typeof sendDirect>>;
        try {
          const { withSpinner } = await import("../spinner.ts");
          r = await withSpinner(
            `waiting for ${target}…`,
            () => sendDirect(node, canonical, body, { topic: o.topic, replyTo, msgId }),
          );
        } catch (e) {
          const { isAtlasError } = await import("../../errors.ts");
          if (!isAtlasError(e, "ERR_USAGE")) {
            await node.store.deliveries
              .record({
                msg_id: msgId,
                target: canonical,
                status: "failed",
                attempts: 1,
                finished_at: Math.floor(Date.now() / 1000),
                detail: `direct send: ${(e as Error).message}`,
              })
              .catch(() => {});
          }
          throw e;
        }
        const s = r.session;
        await node.store.deliveries
          .record({
            msg_id: r.msgId,
            target: s.nodeId,
            status: "delivered",
            attempts: 1,
            path: s.path,
            finished_at: Math.floor(Date.now() / 1000),
            detail: "direct send",
          })
          .catch((e) => ctx.log.warn("could not record the delivery", { error: (e as Error).message }));
        if (ctx.json) {
          const view: DeliveryView = {
            msg_id: r.msgId,
            target: canonical,
            queued: false,
            node_id: s.nodeId,
            name: s.peer.name,
            trust: s.trust,
            path: s.path,
            relay: s.relay ?? null,
            ack: r.ack.status,
          };
          ctx.out.data(view);
        } else {
          ctx.out.fields(
            [
              ["Sent to", `${shortId(s.nodeId)} [${s.trust} via ${pathText(s)}]`],
              ["Msg ID", r.msgId],
              ["Ack", r.ack.status],
            ],
            SEND_LABEL_WIDTH,
          );
        }
      } finally {
        await closeCliNode(node);
      }
    });

  net.command("inbox")
    .description("received messages, oldest first (--follow: keep printing new ones)")
    .option("--follow", "keep running and print messages as they arrive (until SIGINT/SIGTERM)")
    .option("--from <node>", "only messages from this node ID (or unique prefix)")
    .option("--topic <topic>", "only messages with this topic")
    .option(
      "--limit <n>",
      "show the latest N stored messages first (default 100; 0 with --follow: only new ones)",
      intOption("--limit", 0, 1_000_000),
    )
    .option(
      "--after <seq>",
      "only messages stored after this seq (the `seq` of --json output): a resume cursor",
      intOption("--after", 0, Number.MAX_SAFE_INTEGER),
    )
    .action(async (o, cmd) => {
      const ctx = ctxOf(cmd);
      const { openStore } = await import("../../store/index.ts");
      const store = await openStore(ctx.paths.dbFile);
      let stop: (() => void) | null = null;
      const signals = (): Promise<void> =>
        new Promise((resolve) => {
          const onSig = () => {
            process.off("SIGINT", onSig);
            process.off("SIGTERM", onSig);
            process.stdout.off("error", onSig);
            resolve();
          };
          stop = onSig;
          process.on("SIGINT", onSig);
          process.on("SIGTERM", onSig);
          process.stdout.on("error", onSig); // the reader went away (EPIPE, e.g. `| head -1`): stop quietly
        });
      // Install the handlers before the first read so that a signal never kills the process mid-write.
      const stopped = o.follow ? signals() : null;
      try {
        const { resolvePeerId } = await import("../../net/target.ts");
        const from = o.from !== undefined ? await resolvePeerId(store, o.from) : undefined;
        const filter = { from, topic: o.topic };
        const print = async (rows: InboxRow[]) => {
          for (const r of rows) ctx.out.line(ctx.json ? await inboxJsonLine(r) : inboxHuman(r));
        };
        let cursor: number;
        let first: InboxRow[];
        if (o.after !== undefined) {
          first = await store.inbox.list({ ...filter, sinceRowid: o.after, limit: o.limit ?? 1000 });
          cursor = first.at(-1)?.rowid ?? o.after;
        } else {
          // The newest row first: anything stored after it is "new" for --follow.
          const latest = (await store.inbox.list({ limit: 1 })).at(-1)?.rowid ?? 0;
          const limit = o.limit ?? 100;
          first = limit > 0 ? await store.inbox.list({ ...filter, limit }) : [];
          cursor = Math.max(first.at(-1)?.rowid ?? 0, latest);
        }
        await print(first);
        if (!o.follow) {
          if (first.length === 0 && !ctx.json) ctx.out.line("No messages.");
          return;
        }
        let done = false;
        void stopped!.then(() => (done = true));
        while (!done) {
          const rows = await store.inbox.list({ ...filter, sinceRowid: cursor, limit: 500 });
          if (rows.length > 0) {
            await print(rows);
            cursor = rows.at(-1)!.rowid;
            if (rows.length === 500) continue;
          }
          await Promise.race([stopped, new Promise((r) => setTimeout(r, FOLLOW_POLL_MS))]);
        }
      } finally {
        if (stop) (stop as () => void)();
        await store.close();
      }
    });

  net.command("outbox")
    .description("messages waiting for delivery, and the latest delivery outcomes")
    .option("--limit <n>", "how many recent deliveries to show (default 20)", intOption("--limit", 0, 100_000))
    .action(async (o, cmd) => {
      const ctx = ctxOf(cmd);
      const { shortTarget } = await import("../../net/messaging.ts");
      const { utf8Length } = await import("../../wire/utf8.ts");
      const { queued, deliveries } = await withStore(ctx, async (store) => ({
        queued: await store.outbox.list(),
        deliveries: o.limit === 0 ? [] : await store.deliveries.list({ limit: o.limit ?? 20 }),
      }));
      const now = Math.floor(Date.now() / 1000);
      if (ctx.json) {
        ctx.out.data({
          queued: queued.map((r) => ({
            id: r.id,
            target: r.target,
            topic: r.topic,
            reply_to: r.reply_to,
            body_bytes: utf8Length(r.body),
            status: r.status,
            attempts: r.attempts,
            created_at: r.created_at,
            next_attempt_at: r.next_attempt_at,
            expires_at: r.expires_at,
          })),
          deliveries: deliveries.map((d) => ({
            msg_id: d.msg_id,
            target: d.target,
            status: d.status,
            attempts: d.attempts,
            path: d.path,
            finished_at: d.finished_at,
            detail: d.detail,
          })),
        });
        return;
      }
      if (queued.length === 0) ctx.out.line("Outbox is empty.");
      else {
        ctx.out.line(`Queued (${queued.length}):`);
        ctx.out.line(
          table(
            ["MSG ID", "TARGET", "STATUS", "ATTEMPTS", "NEXT ATTEMPT", "EXPIRES"],
            queued.map((
              r,
            ) => [
              r.id,
              shortTarget(r.target),
              r.status,
              String(r.attempts),
              r.status === "delivering" ? "in progress" : relTime(r.next_attempt_at, now),
              relTime(r.expires_at, now),
            ]),
          ),
        );
      }
      if (o.limit === 0) return;
      ctx.out.line("");
      if (deliveries.length === 0) ctx.out.line("No deliveries yet.");
      else {
        ctx.out.line("Recent deliveries:");
        ctx.out.line(
          table(
            ["MSG ID", "TARGET", "STATUS", "ATTEMPTS", "PATH", "FINISHED", "DETAIL"],
            deliveries.map((
              d,
            ) => [
              d.msg_id,
              shortTarget(d.target),
              d.status,
              String(d.attempts),
              d.path ?? "-",
              relTime(d.finished_at, now),
              safeText(humanTimes(d.detail ?? "-", now)),
            ]),
          ),
        );
      }
    });
}
