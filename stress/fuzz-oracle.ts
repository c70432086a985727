/**
 * The fuzzer's judge. What a mutant *is* comes from src/wire's own FrameReader fed the same bytes
 * (the daemon reads request and control streams with it): the first frame decodes, or it fails
 * with the code docs/protocol.md#messages assigns (1001 version, 2002 oversize, 2003 anything else, a frame cut
 * short at FIN included). What the daemon *answered* is read back raw and labelled. The verdict
 * says whether that answer is one the protocol (docs/protocol.md) allows for that input — above all, that nothing but a
 * valid Message from the session's own identity, addressed to the daemon, is ever acknowledged.
 */
import { ProtocolCode } from "../src/errors.ts";
import type { Identity } from "../src/identity/identity.ts";
import { nodeIdFromPublicKey } from "../src/identity/node-id.ts";
import { FrameReader, WireError } from "../src/wire/frame.ts";
import { HEADER_LEN, MAX_PAYLOAD, type WireMessage } from "../src/wire/messages.ts";

/** What a mutant is, to the daemon's decoder. */
export type Nature =
  | { kind: "frame"; msg: WireMessage; /** bytes after the first frame */ rest: number }
  | {
    kind: "error";
    code: number;
    /** the header's declared payload, when 8 bytes were there */
    declared: number;
    /** cut short: only the FIN after it makes it an error (more bytes would extend it) */
    incomplete: boolean;
  }
  | { kind: "empty" };

function declaredLength(b: Uint8Array): number {
  return b.length >= HEADER_LEN ? new DataView(b.buffer, b.byteOffset).getUint32(4) : -1;
}

/** The first frame of `bytes` as a stream reader limited to `maxPayload` sees it, FIN after them. */
export function natureOf(bytes: Uint8Array, maxPayload = MAX_PAYLOAD): Nature {
  if (bytes.length === 0) return { kind: "empty" };
  const r = new FrameReader(maxPayload);
  r.push(bytes);
  try {
    const msg = r.next();
    if (msg) return { kind: "frame", msg, rest: r.buffered };
    return {
      kind: "error",
      code: ProtocolCode.ERR_MESSAGE_REJECTED,
      declared: declaredLength(bytes),
      incomplete: true,
    };
  } catch (e) {
    if (!(e instanceof WireError)) throw new Error(`src/wire threw a non-WireError: ${String(e)}`, { cause: e });
    return { kind: "error", code: e.wireCode, declared: declaredLength(bytes), incomplete: false };
  }
}

/**
 * True when a reader fed `bytes` would be left waiting inside a frame: bytes written after them
 * (a probe) would be swallowed into it. False when every frame is whole, or one is undecodable
 * (the session ends there, whatever follows).
 */
export function leavesPartial(bytes: Uint8Array, maxPayload = MAX_PAYLOAD): boolean {
  const r = new FrameReader(maxPayload);
  r.push(bytes);
  try {
    while (r.next()) {
      // whole frames: keep going
    }
  } catch {
    return false;
  }
  return r.buffered > 0;
}

/** What came back on a stream: its first frame, or how it ended without one. */
export interface Answer {
  frame?: WireMessage;
  /** Bytes that came back but do not decode (a daemon bug if it ever happens). */
  garbled?: boolean;
  /** How the stream ended when no frame came: reset, stopped, connection closed, timeout. */
  end?: string;
}

/** A short label for the outcome table. */
export function labelOf(a: Answer): string {
  if (a.frame) {
    const f = a.frame;
    if (f.type === "Error") return `Error ${f.code}`;
    if (f.type === "RelayError") return `RelayError ${f.code}`;
    return f.type;
  }
  if (a.garbled) return "undecodable answer";
  return a.end ?? "no answer";
}

/** The first frame of answer bytes, if any. */
export function answerOf(bytes: Uint8Array, end: string | undefined): Answer {
  if (bytes.length === 0) return { end: end ?? "FIN without a frame" };
  try {
    const r = new FrameReader(MAX_PAYLOAD);
    r.push(bytes);
    const f = r.next();
    return f ? { frame: f } : { garbled: true };
  } catch {
    return { garbled: true };
  }
}

export interface Verdict {
  ok: boolean;
  why?: string;
}
const OK: Verdict = { ok: true };
const bad = (why: string): Verdict => ({ ok: false, why });

/**
 * An undecodable first frame must get Error <its code>, or 4001: a request stream's frame is
 * refused at its header when the connection's read budget cannot hold it, and other streams'
 * unfinished frames (the fuzzer keeps many in flight) may hold that budget whatever this frame's
 * size. A refusal before decoding is legal; any other code is not.
 */
function judgeError(n: Extract<Nature, { kind: "error" }>, a: Answer): Verdict {
  const f = a.frame;
  if (f?.type !== "Error") return bad(`undecodable frame (${n.code}) answered ${labelOf(a)}`);
  if (f.code === n.code || f.code === ProtocolCode.ERR_RATE_LIMITED) return OK;
  return bad(`undecodable frame answered Error ${f.code}, expected ${n.code}`);
}

/**
 * A request stream after the handshake (daemon: inbox, hole punching, relay acceptance; no
 * bootstrap or relay service). `me` is the session's node ID, `victim` the daemon's.
 */
export function judgeRequest(n: Nature, a: Answer, me: string, victim: string): Verdict {
  if (n.kind === "empty") return a.frame ? bad(`empty stream answered ${labelOf(a)}`) : OK;
  if (n.kind === "error") return judgeError(n, a);
  const m = n.msg;
  const f = a.frame;
  if (!f) return bad(`valid ${m.type} request got no answer (${labelOf(a)})`);
  if (f.type === "MessageAck") {
    if (m.type !== "Message") return bad(`${m.type} acknowledged as a Message`);
    if (m.from !== me || m.to !== victim) {
      return bad("a Message not from the session or not to the daemon was acknowledged");
    }
    return f.msg_id === m.id ? OK : bad(`MessageAck names ${f.msg_id}, not ${m.id}`);
  }
  if (f.type === "RelayError") return m.type === "RelayConnect" ? OK : bad(`${m.type} answered RelayError`);
  if (f.type !== "Error") return bad(`${m.type} answered ${f.type}`);
  if (f.code === ProtocolCode.ERR_MESSAGE_REJECTED) {
    const addressed = m.type === "Message" && m.from === me && m.to === victim;
    return addressed ? bad("a valid Message to the daemon was rejected") : OK;
  }
  if (f.code === ProtocolCode.ERR_INTERNAL && m.type === "Message") return OK; // store failure: allowed
  if (f.code === ProtocolCode.ERR_RATE_LIMITED) return OK; // limits are lifted, but a refusal is legal
  return bad(`valid ${m.type} answered Error ${f.code}`);
}

/** Connection-level facts that go with a control-stream or pre-handshake answer. */
export interface Closed {
  code: number;
  reason: string;
  app: boolean;
}

/**
 * How the connection ended after the answer: the daemon's close, none (still open), or "ours":
 * we closed first on reading its Error, as an Atlas peer does — the daemon waits up to 200 ms for
 * that before closing itself, so waiting out its close on every connection would cost that much.
 */
export type CloseSeen = Closed | null | "ours";

/** How many frames the daemon answers a valid control frame with (docs/protocol.md). */
export function controlAnswers(m: WireMessage): number {
  return m.type === "Pong" || m.type === "Error" || m.type === "Disconnect" ? 0 : 1;
}

/**
 * Every frame of `bytes` as the daemon's control reader takes them, in order, up to the first it
 * cannot decode (the session ends there). With `fin`, bytes left inside a frame are that error.
 */
export function naturesOf(bytes: Uint8Array, fin: boolean): Nature[] {
  const r = new FrameReader(MAX_PAYLOAD);
  r.push(bytes);
  const out: Nature[] = [];
  for (;;) {
    try {
      const msg = r.next();
      if (msg) {
        out.push({ kind: "frame", msg, rest: r.buffered });
        continue;
      }
    } catch (e) {
      const code = e instanceof WireError ? e.wireCode : ProtocolCode.ERR_INTERNAL;
      out.push({ kind: "error", code, declared: -1, incomplete: false });
      return out;
    }
    if (fin && r.buffered > 0) {
      out.push({ kind: "error", code: ProtocolCode.ERR_MESSAGE_REJECTED, declared: -1, incomplete: true });
    }
    return out;
  }
}

/** One valid control frame against its own answers (`mine`): Ping → its Pong, others → Error 2003. */
export function judgeValidControl(m: WireMessage, mine: WireMessage[]): Verdict {
  const a = mine[0];
  if (m.type === "Ping") {
    return a?.type === "Pong" && a.id === m.id && a.echo === m.ts ? OK : bad(`Ping answered ${a?.type ?? "nothing"}`);
  }
  if (controlAnswers(m) === 0) return a ? bad(`${m.type} on the control stream answered ${a.type}`) : OK;
  if (a?.type === "Error" && a.code === ProtocolCode.ERR_MESSAGE_REJECTED) return OK;
  return bad(`${m.type} on the control stream answered ${a?.type ?? "nothing"}`);
}

/**
 * The frames of one write on the control stream after the handshake (docs/protocol.md "Errors on
 * the control stream"): each valid one gets its answer in order and the session goes on; a
 * Disconnect ends it; an undecodable one gets its Error (1001/2002/2003), then a close with that
 * code and DISCONNECT_PROTOCOL_ERROR. `closed`: how the connection ended after the answers.
 */
export function judgeControl(natures: Nature[], answers: WireMessage[], closed: CloseSeen): Verdict {
  if (natures.length === 0) return OK; // nothing but our FIN: the session ends, nothing to answer
  // A Disconnect of ours closes the session at once: answers to the frames before it may be
  // dropped with it (we said goodbye), so those only have to be right when they came.
  const leaving = natures.some((n) => n.kind === "frame" && n.msg.type === "Disconnect");
  let at = 0;
  for (const n of natures) {
    if (n.kind === "empty") return OK;
    if (n.kind === "frame") {
      if (n.msg.type === "Disconnect") return closed ? OK : bad("Disconnect did not end the session");
      const k = controlAnswers(n.msg);
      if (leaving && at + k > answers.length) continue;
      const v = judgeValidControl(n.msg, answers.slice(at, at + k));
      if (!v.ok) return v;
      at += k;
      continue;
    }
    const a = answers[at];
    if (a?.type !== "Error") return bad(`undecodable control frame (${n.code}) answered ${a?.type ?? "nothing"}`);
    if (a.code !== n.code) return bad(`undecodable control frame answered Error ${a.code}, expected ${n.code}`);
    if (!closed) return bad("session kept after an undecodable control frame");
    if (closed === "ours" || closed.code === n.code) return OK;
    return bad(`closed with ${closed.code} after Error ${n.code}`);
  }
  if (at !== answers.length) return bad(`${answers.length - at} answers more than the frames call for`);
  return closed ? bad("session ended after valid frames") : OK;
}

const KNOWN_CODES = new Set<number>(Object.values(ProtocolCode));
const sameBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * What docs/protocol.md#handshake makes the responder do with this first frame on stream 0: HelloAck, an Error frame
 * and a close with its code, or (for an Error frame from us: our refusal) only a close.
 */
function expectedPre(n: Exclude<Nature, { kind: "empty" }>, tls: Identity, maxDrift: number): {
  helloAck?: true;
  error?: number;
  closeOnly?: number;
} {
  if (n.kind === "error") return { error: n.code };
  const m = n.msg;
  if (m.type === "Error") return { closeOnly: KNOWN_CODES.has(m.code) ? m.code : ProtocolCode.ERR_INTERNAL };
  if (m.type !== "Hello") return { error: ProtocolCode.ERR_NOT_VERIFIED };
  if (m.protocol_v !== 1) return { error: ProtocolCode.ERR_PROTOCOL_VERSION };
  if (nodeIdFromPublicKey(m.public_key) !== m.node_id) return { error: ProtocolCode.ERR_INVALID_IDENTITY };
  if (!sameBytes(m.public_key, tls.publicKey)) return { error: ProtocolCode.ERR_HANDSHAKE_FAILED };
  if (Math.abs(m.timestamp - Date.now() / 1000) > maxDrift) return { error: ProtocolCode.ERR_HANDSHAKE_FAILED };
  return { helloAck: true };
}

/** The first frame on stream 0 of a fresh connection (TLS done as `tls`), sent with FIN. */
export function judgePreHandshake(
  n: Nature,
  first: WireMessage | null,
  closed: CloseSeen,
  tls: Identity,
  maxDrift: number,
): Verdict {
  if (n.kind === "empty") return OK;
  // Within a second of the drift limit the clock decides, not the code: not judged.
  if (
    n.kind === "frame" && n.msg.type === "Hello" &&
    Math.abs(Math.abs(n.msg.timestamp - Date.now() / 1000) - maxDrift) < 2
  ) {
    return OK;
  }
  const e = expectedPre(n, tls, maxDrift);
  if (e.helloAck) return first?.type === "HelloAck" ? OK : bad(`valid Hello answered ${first?.type ?? "nothing"}`);
  if (e.closeOnly !== undefined) {
    if (first) return bad(`our Error frame answered ${first.type}`);
    const code = closed === "ours" ? "ours" : closed?.code;
    return code === e.closeOnly ? OK : bad(`our Error frame: close ${code}, expected ${e.closeOnly}`);
  }
  if (first?.type !== "Error") return bad(`expected Error ${e.error}, got ${first?.type ?? "nothing"}`);
  if (first.code !== e.error) return bad(`expected Error ${e.error}, got Error ${first.code}`);
  if (!closed) return bad(`Error ${e.error} but the connection stayed open`);
  if (closed === "ours") return OK;
  return closed.code === e.error ? OK : bad(`Error ${e.error} then close ${closed.code}`);
}
