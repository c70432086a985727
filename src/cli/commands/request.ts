/**
 * `atlas net request` and `net reply` (README.md#commands): request/response for scripts on top
 * of messages. A reply is an ordinary message whose `reply_to` names the request's msg_id; the
 * daemon stores it, so `net request` needs the daemon and waits on its `subscribe` stream
 * (docs/protocol.md#subscribe-streaming) — subscribed before sending, so a quick reply is not missed.
 * The request goes at once over a live session with the peer, else through the outbox.
 */
import { REQUEST_TIMEOUT_MS } from "../../config/durations.ts";
import type { DeliveryView, MessageView } from "../../daemon/shapes.ts";
import type { Ctx } from "../context.ts";
import { type AnyCommand, withBodyOptions } from "../options.ts";
import { SEND_LABEL_WIDTH, sendMessage } from "./messaging.ts";
import { parseDuration } from "./net.ts";
import { shortId } from "../output.ts";

type CtxOf = (cmd: AnyCommand) => Ctx;

/** The pushed message whose reply_to is `msgId`, as its JSON text; null when `deadline` passed first. */
async function awaitReply(
  stream: { next(): Promise<string | null>; close(): void },
  msgId: string,
  deadline: number,
): Promise<string | null> {
  const { parsePush } = await import("../../daemon/control-stream.ts");
  const timer = setTimeout(() => stream.close(), Math.max(0, deadline - Date.now()));
  try {
    for (let line = await stream.next(); line !== null; line = await stream.next()) {
      const p = parsePush(line);
      if (p.kind === "message" && (JSON.parse(p.json) as MessageView).reply_to === msgId) return p.json;
    }
    return null;
  } finally {
    clearTimeout(timer);
  }
}

export function registerRequest(net: AnyCommand, ctxOf: CtxOf): void {
  withBodyOptions(
    net.command("request")
      .description("send a message and wait for its reply (needs the daemon, which receives the reply)")
      .argument("<target>", "node ID (or unique prefix), atlas_<id>@host:port, or host:port")
      .argument("[body]", "JSON text (or a string); `-` reads stdin"),
  )
    .option("--topic <topic>", "topic (at most 128 bytes)")
    .option("--timeout <duration>", "how long to wait for the reply: 10s, 2m… (default 30s)")
    .action(async (target: string, text: string | undefined, o, cmd) => {
      const ctx = ctxOf(cmd);
      const { readBody } = await import("../body.ts");
      const body = await readBody(text, o);
      const timeoutMs = o.timeout === undefined ? REQUEST_TIMEOUT_MS : parseDuration(o.timeout) * 1000;
      const { AtlasError } = await import("../../errors.ts");
      const { isDaemonRunning } = await import("../../daemon/detect.ts");
      if (!(await isDaemonRunning(ctx.paths))) {
        throw new AtlasError(
          "ERR_NOT_RUNNING",
          `net request needs a daemon to receive the reply, and none is running for ${ctx.paths.home}: start one with \`atlas daemon\``,
        );
      }
      const { openStream } = await import("../../daemon/control-stream.ts");
      const { callDaemon } = await import("../../daemon/control-client.ts");
      const stream = await openStream(ctx.paths, "subscribe", { messages: true, replies: true });
      try {
        const t0 = performance.now();
        // At once over a live session (else queued): a request is worth its round trip.
        const q = await callDaemon<DeliveryView>(ctx.paths, "net.send", {
          target,
          body,
          topic: o.topic ?? null,
          reply_to: null,
          now: true,
        });
        const reply = await awaitReply(stream, q.msg_id, Date.now() + timeoutMs);
        if (reply === null) {
          throw new AtlasError("ERR_TIMEOUT", `no reply to ${q.msg_id} within ${timeoutMs / 1000} s`);
        }
        const rtt = performance.now() - t0;
        if (ctx.json) {
          // Spliced, not re-serialised: the reply's body stays verbatim.
          const request = JSON.stringify(q);
          ctx.out.line(`{"request":${request},"reply":${reply},"rtt_ms":${rtt.toFixed(3)}}`);
        } else {
          const m = JSON.parse(reply) as MessageView;
          ctx.out.fields(
            [["Request", q.msg_id], ["Reply", m.id], ["From", shortId(m.from)], ["RTT", `${rtt.toFixed(1)} ms`]],
            SEND_LABEL_WIDTH,
          );
          ctx.out.line(JSON.stringify(m.body));
        }
      } finally {
        stream.close();
      }
    });

  withBodyOptions(
    net.command("reply")
      .description("answer a received message: sent to its sender with reply_to set (and its topic)")
      .argument("<msg_id>", "ID of the received message")
      .argument("[body]", "JSON text (or a string); `-` reads stdin"),
  )
    .option("--topic <topic>", "topic (default: the received message's)")
    .action(async (msgId: string, text: string | undefined, o, cmd) => {
      const ctx = ctxOf(cmd);
      const { readBody } = await import("../body.ts");
      const body = await readBody(text, o);
      const { openStore } = await import("../../store/index.ts");
      const store = await openStore(ctx.paths.dbFile);
      const m = await store.inbox.byId(msgId.toLowerCase()).finally(() => store.close());
      if (!m) {
        const { AtlasError } = await import("../../errors.ts");
        throw new AtlasError("ERR_USAGE", `no message ${msgId} in this node's inbox (see \`atlas net inbox\`)`);
      }
      await sendMessage(ctx, m.from_id, body, { topic: o.topic ?? m.topic ?? undefined, replyTo: m.id });
    });
}
