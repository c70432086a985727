/**
 * `net.send` with `now: true` (the library's default, docs/protocol.md#control-socket-cli--daemon):
 * when a live session with the peer exists, deliver over it at once, as a direct `net send` does,
 * and answer with the MessageAck; otherwise — or when that attempt fails in a way a retry may fix —
 * commit the message to the outbox under the same msg_id, which delivers it with retries. So the
 * common case (agents already talking) costs one round trip instead of an outbox hop (a commit,
 * a claim, a delivery, a completion), and nothing is lost when it cannot go now. A refusal that
 * retrying cannot change (isPermanentRefusal) is the caller's error, as with a direct send.
 */
import type { AtlasNode } from "../net/node.ts";
import {
  buildMessage,
  checkOutgoing,
  deliverOn,
  enqueueMessage,
  isPermanentRefusal,
  newMessageId,
  normalizeBody,
  resolveSendTarget,
  targetNodeId,
} from "../net/messaging.ts";
import { unixNow } from "../util/time.ts";
import type { DeliveryView } from "./shapes.ts";

export interface SendArgs {
  target: string;
  body: string;
  topic: string | null;
  reply_to: string | null;
}

export async function sendNow(node: AtlasNode, a: SendArgs, kick: () => void): Promise<DeliveryView> {
  const body = normalizeBody(a.body);
  checkOutgoing(body, { topic: a.topic ?? undefined, replyTo: a.reply_to ?? undefined });
  const target = await resolveSendTarget(node.store, a.target);
  const id = targetNodeId(target);
  const live = id ? node.liveSession(id) : undefined;
  const msgId = newMessageId();
  if (live) {
    try {
      const msg = buildMessage(node, live.nodeId, body, {
        msgId,
        topic: a.topic ?? undefined,
        replyTo: a.reply_to ?? undefined,
      });
      node.metrics.inc("atlas_messages_sent_total");
      const ack = await deliverOn(live, msg, node.config.transport.request_timeout * 1000);
      // Recorded after the answer: `net outbox` shows it, the caller does not wait for the commit.
      void node.store.deliveries
        .record({
          msg_id: msgId,
          target,
          status: "delivered",
          attempts: 1,
          path: live.path,
          finished_at: unixNow(),
          detail: "sent at once over a live session",
        })
        .catch((e) => node.log.warn("could not record a delivery", { error: (e as Error).message }));
      return {
        msg_id: msgId,
        target,
        queued: false,
        node_id: live.nodeId,
        name: live.peer.name,
        trust: live.trust,
        path: live.path,
        relay: live.relay ?? null,
        ack: ack.status,
      };
    } catch (e) {
      if (isPermanentRefusal(e)) throw e;
      node.log.info("send: the live session failed, handing the message to the outbox", {
        msg: msgId,
        error: (e as Error).message,
      });
    }
  }
  const q = await enqueueMessage(node.store, node.config, { ...a, body, msg_id: msgId });
  kick();
  return {
    msg_id: q.msg_id,
    target: q.target,
    queued: true,
    node_id: null,
    name: null,
    trust: null,
    path: null,
    relay: null,
    ack: null,
  };
}
