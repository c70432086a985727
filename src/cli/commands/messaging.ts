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
import { bodyOfMessageJson, messageJson } from "../../daemon/message-json.ts";
import type { InboxRow, Store } from "../../store/index.ts";
import type { QueuedResult } from "../../net/messaging.ts";
import type { Ctx } from "../context.ts";
import type { DeliveryView, MessageView } from "../../daemon/shapes.ts";
import { queuedView } from "../../daemon/views.ts";
import { humanTimes, isoTime, pathText, relTime, shortId, table } from "../output.ts";
import { type AnyCommand, intOption, withBodyOptions } from "../options.ts";

type CtxOf = (cmd: AnyCommand) => Ctx;
/** Labels of `net send` are padded to one column of this width (README.md#commands). */
export const SEND_LABEL_WIDTH = 8;

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

function inboxHuman(r: InboxRow): string {
  const parts = [isoTime(r.received_at), `from ${shortId(r.from_id)}`];
  if (r.topic !== null) parts.push(`topic ${safeText(r.topic)}`);
  if (r.reply_to !== null) parts.push(`re ${r.reply_to}`);
  parts.push(r.id);
  const body = r.body.split(/\r?\n/).map((l) => "  " + l).join("\n");
  return parts.join("  ") + "\n" + body;
}

/**
 * `net inbox --follow`: print what the daemon's `subscribe` stream pushes (docs/protocol.md#control-socket-cli--daemon),
 * from `after` on, until SIGINT/SIGTERM, the reader goes away (EPIPE) or the daemon stops.
 */
async function followInbox(ctx: Ctx, a: { after: number; from: string | null; topic: string | null }): Promise<void> {
  const { openStream, parsePush } = await import("../../daemon/control-stream.ts");
  const stream = await openStream(ctx.paths, "subscribe", { ...a, messages: true, events: false });
  const stop = () => stream.close();
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  process.stdout.on("error", stop); // `| head -1`: stop quietly
  try {
    for (let line = await stream.next(); line !== null; line = await stream.next()) {
      const p = parsePush(line);
      if (p.kind !== "message") continue;
      if (ctx.json) ctx.out.line(p.json);
      else ctx.out.line(inboxHuman(messageRow(p.json)));
    }
  } finally {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
    process.stdout.off("error", stop);
  }
}

/** A pushed MESSAGE line as the row the human form prints, the body verbatim (big integers and all). */
function messageRow(json: string): InboxRow {
  const m = JSON.parse(json) as MessageView;
  return {
    rowid: m.seq,
    id: m.id,
    from_id: m.from,
    to_id: m.to,
    timestamp: m.timestamp,
    reply_to: m.reply_to,
    topic: m.topic,
    body: bodyOfMessageJson(json),
    received_at: m.received_at,
  };
}

// ---------------------------------------------------------------------------------------------

/**
 * Send `body` (JSON text) to `target` and print the outcome: with a daemon, committed to its outbox
 * (`Queued`/`Target`); without one, dialled and delivered by this process (`Sent to`/`Msg ID`/`Ack`).
 */
export async function sendMessage(
  ctx: Ctx,
  target: string,
  body: string,
  o: { topic?: string; replyTo?: string },
): Promise<DeliveryView> {
  const { checkOutgoing, newMessageId, resolveSendTarget, shortTarget, sendDirect } = await import(
    "../../net/messaging.ts"
  );
  const replyTo = o.replyTo;
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
    const view = queuedView(msgId, canonical);
    if (ctx.json) ctx.out.data(view);
    else ctx.out.fields([["Queued", msgId], ["Target", shortTarget(canonical)]], SEND_LABEL_WIDTH);
    return view;
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
    if (ctx.json) ctx.out.data(view);
    else {
      ctx.out.fields(
        [
          ["Sent to", `${shortId(s.nodeId)} [${s.trust} via ${pathText(s)}]`],
          ["Msg ID", r.msgId],
          ["Ack", r.ack.status],
        ],
        SEND_LABEL_WIDTH,
      );
    }
    return view;
  } finally {
    await closeCliNode(node);
  }
}

/** `atlas net send|inbox|outbox` (README.md#commands), added to the `net` command. */
export function registerMessaging(net: AnyCommand, ctxOf: CtxOf): void {
  withBodyOptions(
    net.command("send")
      .description("send a message: queued for the daemon when one runs, else delivered directly")
      .argument("<target>", "node ID (or unique prefix), atlas_<id>@host:port, or host:port")
      .argument(
        "[body]",
        "JSON text; anything else is sent as a JSON string; `-` reads stdin (use -- before a body starting with '-')",
      ),
  )
    .option("--topic <topic>", "topic (at most 128 bytes)")
    .option("--reply-to <msg_id>", "ID of the message this one answers")
    .action(async (target: string, text: string | undefined, o, cmd) => {
      const ctx = ctxOf(cmd);
      const { readBody } = await import("../body.ts");
      const body = await readBody(text, o);
      await sendMessage(ctx, target, body, { topic: o.topic, replyTo: o.replyTo?.toLowerCase() });
    });
  net.command("inbox")
    .description("received messages, oldest first (--follow: keep printing new ones as the daemon stores them)")
    .option("--follow", "keep running and print messages as the daemon pushes them (until SIGINT/SIGTERM)")
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
      if (o.follow) {
        // Only a running daemon receives messages: following without one would wait for nothing.
        const { isDaemonRunning } = await import("../../daemon/detect.ts");
        if (!(await isDaemonRunning(ctx.paths))) {
          const { AtlasError } = await import("../../errors.ts");
          throw new AtlasError(
            "ERR_NOT_RUNNING",
            `no daemon is running for ${ctx.paths.home}, so nothing can arrive: start one with \`atlas daemon\``,
          );
        }
      }
      const { openStore } = await import("../../store/index.ts");
      const store = await openStore(ctx.paths.dbFile);
      let cursor: number;
      let filter: { from?: string; topic?: string };
      try {
        const { resolvePeerId } = await import("../../net/target.ts");
        const from = o.from !== undefined ? await resolvePeerId(store, o.from) : undefined;
        filter = { from, topic: o.topic };
        let first: InboxRow[];
        if (o.after !== undefined) {
          first = await store.inbox.list({ ...filter, sinceRowid: o.after, limit: o.limit ?? 1000 });
          cursor = first.at(-1)?.rowid ?? o.after;
        } else {
          // The newest row first: anything stored after it is "new" for --follow.
          const latest = await store.inbox.latestSeq();
          const limit = o.limit ?? 100;
          first = limit > 0 ? await store.inbox.list({ ...filter, limit }) : [];
          cursor = Math.max(first.at(-1)?.rowid ?? 0, latest);
        }
        for (const r of first) ctx.out.line(ctx.json ? messageJson(r) : inboxHuman(r));
        if (!o.follow && first.length === 0 && !ctx.json) ctx.out.line("No messages.");
      } finally {
        await store.close();
      }
      if (o.follow) await followInbox(ctx, { after: cursor, from: filter.from ?? null, topic: filter.topic ?? null });
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
