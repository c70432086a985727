/**
 * Request/answer exchanges for the abuse phases, on authenticated sessions with a victim: valid
 * frames the victim must refuse (spoofed IDs) and hand-made ones the encoder would never produce
 * (malformed payloads). Every exchange ends in one outcome label, so a phase can count them.
 */
import { encode } from "@msgpack/msgpack";
import { isAtlasError, ProtocolCode } from "../src/errors.ts";
import type { Session } from "../src/net/session.ts";
import type { QuicStream } from "../src/transport/stream.ts";
import { FramedStream } from "../src/wire/framed-stream.ts";
import { HEADER_LEN, MsgType, type MsgTypeName, type WireMessage } from "../src/wire/messages.ts";

/** How long a victim may take to answer one exchange. */
export const ANSWER_MS = 10_000;

/** `RelayError 3`, `Error 2003`, `RelayReady`, `BootstrapPeers`, … : what an answer was. */
export function label(m: WireMessage | null): string {
  if (m === null) return "no answer (stream ended)";
  if (m.type === "RelayError" || m.type === "Error") return `${m.type} ${m.code}`;
  return m.type;
}

/** The label of a failed exchange: a protocol error by its code, else the local error's name. */
export function errorLabel(e: unknown): string {
  if (!isAtlasError(e)) return "exception";
  const wire = (ProtocolCode as Record<string, number>)[e.code];
  return wire === undefined ? e.code : `Error ${wire}`;
}

/** One frame on a new stream, left open (a RelayConnect's stream is its pipe); the answer and the stream. */
export async function askOpen(
  s: Session,
  req: WireMessage,
): Promise<{ answer: WireMessage | null; stream: QuicStream }> {
  const stream = s.conn.openStream();
  const fs = new FramedStream(stream);
  await fs.write(req);
  return { answer: await fs.read(ANSWER_MS), stream };
}

/** `askOpen` reduced to its label; a failure is labelled too (and its stream reset). */
export async function askLabel(s: Session, req: WireMessage): Promise<{ label: string; stream?: QuicStream }> {
  try {
    const r = await askOpen(s, req);
    return { label: label(r.answer), stream: r.stream };
  } catch (e) {
    return { label: errorLabel(e) };
  }
}

/** A frame with any payload at all (not validated): the envelope of docs/protocol.md#messages around MessagePack. */
export function rawFrame(type: MsgTypeName | number, payload: unknown, o: { magic?: number; version?: number } = {}) {
  const body = encode(payload);
  const f = new Uint8Array(HEADER_LEN + body.length);
  f.set([o.magic ?? 0xac, 0x01, o.version ?? 1, typeof type === "number" ? type : MsgType[type]]);
  new DataView(f.buffer).setUint32(4, body.length);
  f.set(body, HEADER_LEN);
  return f;
}

/** Raw bytes as a whole request stream (FIN after them); the label of what comes back. */
export async function askRaw(s: Session, bytes: Uint8Array): Promise<string> {
  const stream = s.conn.openStream();
  try {
    await stream.end(bytes).catch((e) => {
      // A victim that refuses at the header stops our write; its Error frame says why.
      if (!isAtlasError(e, "ERR_RESET")) throw e;
    });
    return label(await new FramedStream(stream).read(ANSWER_MS));
  } catch (e) {
    return isAtlasError(e, "ERR_RESET") ? "reset without an answer" : errorLabel(e);
  } finally {
    stream.abort(0);
  }
}
