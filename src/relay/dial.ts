/**
 * Dialling through a relay (docs/protocol.md#relay steps 2–4, the dialler B): RelayConnect on a new stream of
 * B's connection to the relay, RelayReady `ready` with B's session number, then the inner QUIC
 * connection — B is its client — over the pipe, and the full Atlas handshake inside it, pinned to
 * the target's node ID.
 */
import { AtlasError } from "../errors.ts";
import { shortNodeId } from "../identity/node-id.ts";
import type { AtlasNode } from "../net/node.ts";
import type { Session } from "../net/session.ts";
import { FramedStream } from "../wire/framed-stream.ts";
import { relayErrorName, relayErrorText } from "../wire/relay-errors.ts";
import { MIN_PIPE_DATAGRAM, relayLinks, RelayPipe } from "./pipe.ts";
import { relayLabel, relaySession, resolveRelay } from "./session.ts";

/** A RelayError as a typed error: ERR_REJECTED when it refuses us, else ERR_UNREACHABLE (relay-errors.ts). */
export function relayErrorToAtlas(relay: string, code: number, reason: string): AtlasError {
  return new AtlasError(
    relayErrorName(code, reason),
    `relay ${relay}: ${relayErrorText(code)} (RelayError ${code}${reason ? `: ${reason}` : ""})`,
  );
}

export async function dialViaRelay(
  node: AtlasNode,
  relayText: string,
  targetId: string,
  o: { signal?: AbortSignal } = {},
): Promise<Session> {
  const ref = await resolveRelay(relayText);
  const relay = await relaySession(node, ref, o.signal);
  const label = relayLabel(relay, ref);
  if (relay.nodeId === targetId) throw new AtlasError("ERR_UNREACHABLE", `relay ${label} is the target itself`);
  const max = relay.conn.maxDatagramLen();
  if (max < MIN_PIPE_DATAGRAM) {
    throw new AtlasError(
      "ERR_UNREACHABLE",
      `relay ${label}: the connection carries DATAGRAMs of at most ${max} bytes (a pipe needs ${MIN_PIPE_DATAGRAM})`,
    );
  }
  const cfg = node.config.transport;
  const stream = relay.conn.openStream();
  const fs = new FramedStream(stream);
  relay.lastActivity = Date.now();
  let res;
  try {
    // No FIN: the stream stays open as the pipe's lifetime (docs/protocol.md#messages Streams).
    await fs.write({ type: "RelayConnect", source_id: node.nodeId, target_id: targetId });
    res = await fs.read((cfg.relay_pairing_timeout + cfg.request_timeout) * 1000);
  } catch (e) {
    stream.abort(0);
    throw new AtlasError("ERR_UNREACHABLE", `relay ${label}: no answer to RelayConnect (${(e as Error).message})`);
  }
  if (res?.type === "RelayError") {
    stream.abort(0);
    throw relayErrorToAtlas(label, res.code, res.reason);
  }
  if (res?.type !== "RelayReady" || res.status !== "ready" || res.session === undefined) {
    stream.abort(0);
    throw new AtlasError("ERR_UNREACHABLE", `relay ${label} answered RelayConnect with ${res ? res.type : "nothing"}`);
  }
  const links = relayLinks(node);
  const pipe = new RelayPipe(relay, res.session, label);
  links.add(pipe);
  pipe.attach(node.endpoint.openVirtual("client", pipe, relay.conn.remote));
  pipe.bind(stream, () => links.remove(pipe));
  node.log.debug("relay pipe ready", { relay: label, target: shortNodeId(targetId), session: res.session });
  return node.runOutbound(pipe.inner!, { expectedNodeId: targetId, path: "relay", relay: label, signal: o.signal });
}
