/**
 * The target's side of a relay pipe (docs/protocol.md#relay step 3, agent A): the relay opens a stream on A's
 * connection with RelayConnect {source_id: B, target_id: A, session: a}. A refuses (RelayError)
 * a relay it is not registered with, a request for another node, a banned source or a connection
 * that cannot carry full-size pipe DATAGRAMs; otherwise it installs session a, answers RelayReady
 * `ready`, and accepts the inner QUIC connection — A is its server — when B's first packet
 * arrives. Only `source_id` may complete the inner handshake.
 */
import { ProtocolCode } from "../errors.ts";
import { shortNodeId } from "../identity/node-id.ts";
import type { AtlasNode } from "../net/node.ts";
import type { Session } from "../net/session.ts";
import type { QuicStream } from "../transport/stream.ts";
import { FramedStream } from "../wire/framed-stream.ts";
import { type RelayConnect, RelayErrorCode, type WireMessage } from "../wire/messages.ts";
import { MIN_PIPE_DATAGRAM, relayLinks, RelayPipe } from "./pipe.ts";

export interface AcceptOptions {
  /** The relay `atlas_<id>@host:port` this session is registered with, or null (not a relay of ours). */
  relayOf: (s: Session) => string | null;
}

export function acceptRelayedConnections(node: AtlasNode, o: AcceptOptions): void {
  node.handle(
    "RelayConnect",
    (s, req, stream) => (req.type === "RelayConnect" ? onRelayConnect(node, o, s, req, stream) : Promise.resolve(null)),
  );
}

async function onRelayConnect(
  node: AtlasNode,
  o: AcceptOptions,
  relay: Session,
  req: RelayConnect,
  stream: QuicStream,
): Promise<WireMessage | null> {
  const refuse = (code: number, reason: string): WireMessage => {
    node.log.info("relayed connection refused", {
      relay: shortNodeId(relay.nodeId),
      source: shortNodeId(req.source_id),
      reason,
    });
    return { type: "RelayError", code, reason };
  };
  const label = o.relayOf(relay);
  if (!label) return refuse(RelayErrorCode.TARGET_REFUSED, "this node is not registered with you as a relay");
  if (req.target_id !== node.nodeId) return refuse(RelayErrorCode.TARGET_REFUSED, "target_id is not this node");
  if (req.session === undefined) {
    return {
      type: "Error",
      code: ProtocolCode.ERR_MESSAGE_REJECTED,
      message: "RelayConnect from a relay must carry a session number",
    };
  }
  const banned = await node.bannedUntil(req.source_id);
  if (banned !== null) return refuse(RelayErrorCode.TARGET_REFUSED, `source is banned until ${banned}`);
  const max = relay.conn.maxDatagramLen();
  if (max < MIN_PIPE_DATAGRAM) {
    return refuse(
      RelayErrorCode.DATAGRAMS_UNAVAILABLE,
      `DATAGRAMs of at most ${max} bytes (need ${MIN_PIPE_DATAGRAM})`,
    );
  }
  const links = relayLinks(node);
  const pipe = new RelayPipe(relay, req.session, label);
  pipe.onFirstPacket = (p) => {
    try {
      const inner = node.endpoint.openVirtual("server", p, relay.conn.remote);
      node.acceptConnection(inner, { sourceId: req.source_id, relay: label });
      return inner;
    } catch (e) {
      node.log.warn("cannot accept relayed connection", { error: (e as Error).message });
      return null;
    }
  };
  links.add(pipe);
  try {
    await new FramedStream(stream).write({ type: "RelayReady", status: "ready", session: req.session });
  } catch {
    links.remove(pipe);
    return null;
  }
  pipe.bind(stream, () => links.remove(pipe));
  node.log.info("relayed connection expected", { relay: label, source: shortNodeId(req.source_id) });
  return null; // the stream stays open as the pipe's lifetime
}
