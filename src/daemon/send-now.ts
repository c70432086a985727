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
import type { ControlHandler, DaemonPart, Service } from "../util/service.ts";
import type { DeliveryRecord } from "../store/index.ts";
import { CONTROL_LIMITS } from "../config/defaults.ts";
import { DELIVERY_FLUSH_MS } from "../config/durations.ts";
import type { DeliveryView } from "./shapes.ts";
import { queuedView } from "./views.ts";

export interface SendArgs {
  target: string;
  body: string;
  topic: string | null;
  reply_to: string | null;
}

/**
 * The `deliveries` rows of sends made at once, committed in batches (every DELIVERY_FLUSH_MS, or
 * at DELIVERY_BATCH rows, and at stop): `net outbox` shows them a moment later, and a send never
 * waits for a commit. A service of the agent daemon.
 */
export class DeliveryRecords implements Service {
  #pending: DeliveryRecord[] = [];
  #timer: ReturnType<typeof setTimeout> | null = null;
  readonly #node: AtlasNode;

  constructor(node: AtlasNode) {
    this.#node = node;
  }

  start(): void {}

  stop(): Promise<void> {
    return this.flush();
  }

  add(d: DeliveryRecord): void {
    this.#pending.push(d);
    if (this.#pending.length >= CONTROL_LIMITS.DELIVERY_BATCH) void this.flush();
    else this.#timer ??= setTimeout(() => void this.flush(), DELIVERY_FLUSH_MS);
  }

  async flush(): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    const batch = this.#pending.splice(0);
    await this.#node.store.deliveries.recordMany(batch)
      .catch((e) => this.#node.log.warn("could not record deliveries", { error: (e as Error).message }));
  }
}

export async function sendNow(
  node: AtlasNode,
  records: DeliveryRecords,
  a: SendArgs,
  kick: () => void,
): Promise<DeliveryView> {
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
      records.add({
        msg_id: msgId,
        target,
        status: "delivered",
        attempts: 1,
        path: live.path,
        finished_at: unixNow(),
        detail: "sent at once over a live session",
      });
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
  return queuedView(q.msg_id, q.target);
}

/**
 * The agent daemon's `net.send`: queued in the outbox (the CLI's `net send`), or with `now: true`
 * sent at once when it can be (sendNow). Returns the delivery-record service to run.
 */
export function sendPart(node: AtlasNode, outbox: { kick(): void }): DaemonPart {
  const records = new DeliveryRecords(node);
  const send: ControlHandler = async (a) => {
    const args: SendArgs = {
      target: String(a.target),
      body: String(a.body),
      topic: typeof a.topic === "string" ? a.topic : null,
      reply_to: typeof a.reply_to === "string" ? a.reply_to : null,
    };
    if (a.now === true) return sendNow(node, records, args, () => outbox.kick());
    const r = await enqueueMessage(node.store, node.config, args);
    outbox.kick();
    return r;
  };
  return { name: "send", services: [records], handlers: { "net.send": send } };
}
