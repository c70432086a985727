/**
 * Messages between agents (docs/protocol.md#messages Message/MessageAck, §8 inbox, §14 `net send`).
 *
 * - Bodies are JSON text and travel as text: a body is never parsed and re-serialised, so any
 *   JSON (big integers, key order, number spelling) arrives byte for byte as it was sent.
 * - The receiver stores a message before it acknowledges it; a re-delivery (same sender and
 *   message ID) is acknowledged again but stored once. Nothing the sender does can crash the
 *   handler: a bad message is answered with Error 2003, a store failure with Error 5001.
 * - Inbox limits: at most `inbox.max_per_peer` messages per sender — storing a new message
 *   prunes that sender's oldest ones beyond the limit (a full inbox never refuses new mail, so a
 *   sender's outbox never retries against it forever) — and `inbox.retention_days`, enforced by
 *   `pruneInbox`, which the daemon calls at start and hourly.
 */
import { uuidv7 } from "uuidv7";
import type { Config } from "../config/defaults.ts";
import { AtlasError, isAtlasError, ProtocolCode } from "../errors.ts";
import { isNodeId, shortNodeId } from "../identity/node-id.ts";
import type { InboxMessage, InboxRow, Store } from "../store/index.ts";
import { formatAddr } from "../transport/addr.ts";
import { unixNow } from "../util/time.ts";
import { type AtlasMessage, Limits, MAX_PAYLOAD, type MessageAck, type WireMessage } from "../wire/messages.ts";
import { isMsgId } from "../wire/ids.ts";
import { isJsonText } from "../wire/json-text.ts";
import { fitsUtf8, isWellFormed, utf8Length } from "../wire/utf8.ts";
import { dialPeer } from "./dial.ts";
import type { AtlasNode } from "./node.ts";
import type { Session } from "./session.ts";
import { parseTarget, resolvePeerId } from "./target.ts";

/** Room left in a 4 MiB payload for the other Message fields (IDs, timestamp, topic, keys). */
const ENVELOPE_ROOM = 1024;
/** Largest body (UTF-8 bytes) that fits in one Message frame. */
export const MAX_BODY_BYTES = MAX_PAYLOAD - ENVELOPE_ROOM;

/** A new message ID: `msg_` + UUIDv7 (time-ordered), lowercase. */
export function newMessageId(): string {
  return "msg_" + uuidv7().toLowerCase();
}

/**
 * The body to send for what the user typed: the text itself when it is JSON (kept verbatim, so
 * big integers and formatting survive), else the text as a JSON string.
 */
export function normalizeBody(text: string): string {
  return isJsonText(text) ? text : JSON.stringify(text);
}

/**
 * JSON text without insignificant whitespace, every token kept verbatim (numbers are never
 * reinterpreted). Used to put a stored body on one line of JSON-lines output. `text` must be
 * JSON text (see isJsonText).
 */
export function compactJson(text: string): string {
  let out = "";
  let start = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) {
      out += text.slice(start, i);
      start = i + 1;
    }
  }
  return start === 0 ? text : out + text.slice(start);
}

/** Check the parts of a Message a user supplies, before anything touches the network. */
export function checkOutgoing(body: string, opts: { topic?: string; replyTo?: string } = {}): void {
  if (!isJsonText(body)) throw new AtlasError("ERR_USAGE", "message body must be JSON text");
  if (!isWellFormed(body)) throw new AtlasError("ERR_USAGE", "message body must be well-formed Unicode");
  if (!fitsUtf8(body, MAX_BODY_BYTES)) {
    throw new AtlasError("ERR_USAGE", `message body is ${utf8Length(body)} bytes; the limit is ${MAX_BODY_BYTES}`);
  }
  if (opts.topic !== undefined) {
    if (!isWellFormed(opts.topic) || !fitsUtf8(opts.topic, Limits.TOPIC_BYTES)) {
      throw new AtlasError("ERR_USAGE", `topic must be at most ${Limits.TOPIC_BYTES} bytes of text`);
    }
  }
  if (opts.replyTo !== undefined && !isMsgId(opts.replyTo)) {
    throw new AtlasError(
      "ERR_USAGE",
      `invalid message ID '${opts.replyTo}': expected msg_ followed by a lowercase UUID`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// receiving

/**
 * Inbox housekeeping (docs/architecture.md#peer-store): drop messages older than `inbox.retention_days` and trim every
 * sender to `inbox.max_per_peer`. The daemon calls it at start and then hourly.
 */
export async function pruneInbox(
  store: Store,
  cfg: Config,
  now = unixNow(),
): Promise<{ expired: number; excess: number }> {
  const expired = await store.inbox.pruneReceivedBefore(now - cfg.inbox.retention_days * 86400);
  const excess = await store.inbox.pruneExcess(cfg.inbox.max_per_peer);
  return { expired, excess };
}

function rejectMessage(req: AtlasMessage, message: string): WireMessage {
  return {
    type: "Error",
    code: ProtocolCode.ERR_MESSAGE_REJECTED,
    message,
    ref_msg_id: isMsgId(req.id) ? req.id : undefined,
  };
}

/**
 * Serve Message requests on `node`: check the addressing, store into the inbox, then answer
 * MessageAck `received`. `onMessage` is called once per newly stored message (not for
 * re-deliveries).
 */
export function serveInbox(node: AtlasNode, opts: { onMessage?: (m: InboxRow) => void } = {}): void {
  node.handle("Message", async (session, req, stream) => {
    if (req.type !== "Message") {
      return { type: "Error", code: ProtocolCode.ERR_MESSAGE_REJECTED, message: `expected Message, got ${req.type}` };
    }
    if (req.from !== session.nodeId) {
      return rejectMessage(
        req,
        `message 'from' ${shortNodeId(req.from)} is not the sender's verified node ID ${shortNodeId(session.nodeId)}`,
      );
    }
    if (req.to !== node.nodeId) {
      return rejectMessage(
        req,
        `message is addressed to ${shortNodeId(req.to)}, not to this node ${shortNodeId(node.nodeId)}`,
      );
    }
    const m: InboxMessage = {
      id: req.id,
      from_id: req.from,
      to_id: req.to,
      timestamp: req.timestamp,
      reply_to: req.reply_to ?? null,
      topic: req.topic ?? null,
      body: req.body,
      received_at: unixNow(),
    };
    let seq: number | null;
    let pruned = 0;
    try {
      // Messages of one session stored in the same batch go in the order their streams were
      // opened, i.e. the order the sender sent them (docs/contributing.md, outbox order).
      ({ seq, pruned } = await node.store.inbox.insertAndTrim(m, node.config.inbox.max_per_peer, {
        group: session,
        n: stream.id,
      }));
    } catch (e) {
      node.log.error("could not store a received message", {
        from: shortNodeId(req.from),
        msg: req.id,
        error: (e as Error).message,
      });
      return {
        type: "Error",
        code: ProtocolCode.ERR_INTERNAL,
        message: "receiver could not store the message",
        ref_msg_id: req.id,
      };
    }
    // Fault injection for the crash tests: die between storing and acknowledging.
    if (process.env.ATLAS_FAULT_KILL_AFTER_STORE === "1") process.kill(process.pid, "SIGKILL");
    if (seq !== null) {
      node.metrics.inc("atlas_messages_received_total");
      node.log.info("message received", {
        from: shortNodeId(req.from),
        msg: req.id,
        topic: req.topic,
        bytes: utf8Length(req.body),
      });
      if (pruned > 0) {
        node.log.info("inbox full for sender: oldest messages pruned", {
          from: shortNodeId(req.from),
          pruned,
          max_per_peer: node.config.inbox.max_per_peer,
        });
      }
      try {
        opts.onMessage?.({ ...m, rowid: seq, reply_to: m.reply_to ?? null, topic: m.topic ?? null });
      } catch (e) {
        node.log.warn("onMessage hook failed", { error: (e as Error).message });
      }
    } else {
      node.log.debug("message re-delivered: acknowledged again", { from: shortNodeId(req.from), msg: req.id });
    }
    const ack: MessageAck = { type: "MessageAck", msg_id: req.id, status: "received" };
    return ack;
  });
}

// ---------------------------------------------------------------------------------------------
// sending

export interface SendOptions {
  topic?: string;
  replyTo?: string;
  /** Default: a new one. The outbox passes the queued message's ID (re-deliveries keep it). */
  msgId?: string;
  /** Default: now. The outbox passes the time the message was queued. */
  timestamp?: number;
}

export interface SendResult {
  msgId: string;
  session: Session;
  /** An existing live session carried it (no new dial). */
  reused: boolean;
  ack: MessageAck;
}

/** The Message for `session`'s peer. */
export function buildMessage(node: AtlasNode, to: string, body: string, o: SendOptions = {}): AtlasMessage {
  const msg: AtlasMessage = {
    type: "Message",
    id: o.msgId ?? newMessageId(),
    from: node.nodeId,
    to,
    timestamp: o.timestamp ?? unixNow(),
    body,
  };
  if (o.replyTo !== undefined && o.replyTo !== null) msg.reply_to = o.replyTo;
  if (o.topic !== undefined && o.topic !== null) msg.topic = o.topic;
  return msg;
}

/**
 * One Message/MessageAck exchange on `session`. Throws ERR_TIMEOUT when no answer arrives within
 * `timeoutMs`, the peer's typed error when it answers Error (e.g. ERR_MESSAGE_REJECTED,
 * ERR_RATE_LIMITED, ERR_INTERNAL), ERR_MESSAGE_REJECTED for any other answer.
 */
export async function deliverOn(session: Session, msg: AtlasMessage, timeoutMs: number): Promise<MessageAck> {
  let res: WireMessage;
  try {
    res = await session.request(msg, timeoutMs);
  } catch (e) {
    if (isAtlasError(e, "ERR_TIMEOUT")) {
      throw new AtlasError(
        "ERR_TIMEOUT",
        `no MessageAck from ${shortNodeId(session.nodeId)} within ${timeoutMs / 1000} s`,
        { cause: e },
      );
    }
    throw e;
  }
  if (res.type !== "MessageAck" || res.status !== "received") {
    const what = res.type === "MessageAck" ? `MessageAck '${res.status}'` : res.type;
    throw new AtlasError("ERR_MESSAGE_REJECTED", `peer answered ${what} instead of MessageAck 'received'`);
  }
  if (res.msg_id !== undefined && res.msg_id !== msg.id) {
    throw new AtlasError("ERR_MESSAGE_REJECTED", `peer acknowledged ${res.msg_id} instead of ${msg.id}`);
  }
  return res;
}

/**
 * Direct delivery (docs/protocol.md#dialing, README.md#commands): dial `target` (reusing a live session), send the Message and
 * wait `transport.request_timeout` for its MessageAck. `body` must be JSON text (normalizeBody).
 */
export async function sendDirect(
  node: AtlasNode,
  target: string,
  body: string,
  opts: SendOptions = {},
): Promise<SendResult> {
  checkOutgoing(body, opts);
  const { session, reused } = await dialPeer(node, target);
  const msg = buildMessage(node, session.nodeId, body, opts);
  const ack = await deliverOn(session, msg, node.config.transport.request_timeout * 1000);
  return { msgId: msg.id, session, reused, ack };
}

// ---------------------------------------------------------------------------------------------
// targets

/**
 * The canonical form of a send target, as stored in `outbox.target`: a full node ID (a prefix
 * is resolved against known peers; a full ID need not be known yet), `atlas_<id>@host:port`,
 * or `host:port`. Unknown or ambiguous prefixes are ERR_USAGE.
 */
// deno-lint-ignore require-await -- parseTarget throws ERR_USAGE synchronously; callers get it as a rejection
export async function resolveSendTarget(store: Store, text: string): Promise<string> {
  const t = parseTarget(text);
  if (t.kind === "addr") return formatAddr(t.addr);
  if (t.kind === "pinned") return `${t.nodeId}@${formatAddr(t.addr)}`;
  return resolvePeerId(store, t.text);
}

/** The node ID a canonical target names, if it names one. */
export interface QueuedResult {
  msg_id: string;
  target: string;
}

/**
 * `net send` with a daemon: resolve the target, commit the message to the outbox (README.md#commands:
 * queued, then delivered with retries until acknowledged or expired) and return its ID.
 */
export async function enqueueMessage(
  store: Store,
  cfg: Config,
  a: { target: string; body: string; topic?: string | null; reply_to?: string | null; msg_id?: string },
): Promise<QueuedResult> {
  const body = normalizeBody(a.body);
  checkOutgoing(body, { topic: a.topic ?? undefined, replyTo: a.reply_to ?? undefined });
  const target = await resolveSendTarget(store, a.target);
  const id = a.msg_id ?? newMessageId();
  const now = unixNow();
  await store.outbox.enqueue({
    id,
    target,
    topic: a.topic ?? null,
    reply_to: a.reply_to ?? null,
    body,
    created_at: now,
    expires_at: now + cfg.outbox.ttl,
  });
  return { msg_id: id, target };
}

export function targetNodeId(target: string): string | null {
  const at = target.indexOf("@");
  const id = at > 0 ? target.slice(0, at) : target;
  return isNodeId(id) ? id : null;
}

/** Human form of a canonical target: node IDs shortened. */
export function shortTarget(target: string): string {
  const id = targetNodeId(target);
  if (!id) return target;
  const at = target.indexOf("@");
  return shortNodeId(id) + (at > 0 ? target.slice(at) : "");
}

/**
 * A refusal that retrying will not change (README.md#commands: the outbox stops on rejected, banned,
 * invalid identity): the handshake was rejected, the sender is banned, the peer is not who the
 * target names, or it refuses this message. Rate limiting (not a ban), timeouts, resets,
 * unreachable peers, clock drift and receiver-side failures are worth another attempt.
 */
export function isPermanentRefusal(e: unknown): boolean {
  if (!isAtlasError(e)) return false;
  switch (e.code) {
    case "ERR_INVALID_IDENTITY":
    case "ERR_MESSAGE_REJECTED":
    case "ERR_PAYLOAD_TOO_LARGE":
    case "ERR_PROTOCOL_VERSION":
    case "ERR_REJECTED":
    case "ERR_USAGE":
    case "ERR_BANNED":
      return true;
    case "ERR_RATE_LIMITED":
      return /\bbanned\b/i.test(e.message);
    case "ERR_HANDSHAKE_FAILED":
      return !/clock drift/i.test(e.message);
    default:
      return false;
  }
}
