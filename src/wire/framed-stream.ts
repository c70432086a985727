import { AtlasError, type ProtocolCodeName } from "../errors.ts";
import type { QuicStream } from "../transport/stream.ts";
import { encodeFrame, FrameReader, MAX_PAYLOAD, WireError } from "./frame.ts";
import type { WireMessage } from "./messages.ts";

/** Why a frame is refused at its header, before its payload is read. */
export interface HeaderRefusal {
  code: ProtocolCodeName;
  message: string;
}

/**
 * Asked once per frame whose header has arrived and whose payload has not (type byte, declared
 * payload length): null admits it, a refusal stops the stream before any more of it is read.
 */
export type HeaderCheck = (type: number, payloadLen: number) => HeaderRefusal | null;

/**
 * Atlas frames over one QUIC stream. Reads carry a deadline; an oversized or malformed frame
 * is answered with an Error frame (FIN) and the stream stops reading (docs/protocol.md#messages).
 *
 * Memory: a frame's declared payload is reserved from the connection's read budget
 * (transport/read-budget.ts) as soon as its header is in, for as long as a `read` is collecting
 * it; a frame that does not fit is refused with Error 4001 instead of being read.
 */
export class FramedStream {
  readonly stream: QuicStream;
  /** Checked at each frame's header (rate limits that must count frames still arriving). */
  checkHeader: HeaderCheck | null = null;
  private reader: FrameReader;
  private eof = false;
  private pushed = 0;
  private consumed = 0;
  /** Bytes reserved for the frame in progress (released when `read` returns or throws). */
  private reserved = 0;
  /** Frames completed so far, and the index of the last frame `checkHeader` admitted. */
  private framesDone = 0;
  private checkedFrame = -1;
  /** Size (header + payload) of the frame `read` returned last: what rate limits count. */
  lastFrameBytes = 0;
  /**
   * A refused frame's Error is kept in `heldRefusal` instead of written at once: on a pipe
   * (docs/protocol.md#pipelined-requests) it must follow the answers to the frames before it.
   */
  holdRefusal = false;
  heldRefusal: WireMessage | null = null;

  constructor(stream: QuicStream, maxPayload = MAX_PAYLOAD) {
    this.stream = stream;
    this.reader = new FrameReader(maxPayload);
  }

  set maxPayload(n: number) {
    this.reader.maxPayload = n;
  }

  /**
   * The next frame, or null at a clean end of stream. Throws WireError for malformed input
   * (after answering it on the stream), ERR_RATE_LIMITED for a frame refused at its header,
   * ERR_TIMEOUT past the deadline, ERR_RESET if reset.
   */
  async read(timeoutMs?: number): Promise<WireMessage | null> {
    try {
      return await this.collect(timeoutMs);
    } finally {
      this.stream.conn.budget.release(this.reserved);
      this.reserved = 0;
    }
  }

  private async collect(timeoutMs?: number): Promise<WireMessage | null> {
    const deadline = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
    for (;;) {
      let msg: WireMessage | null;
      try {
        msg = this.reader.next();
      } catch (e) {
        if (e instanceof WireError) await this.refuse(e.wireCode, e.message);
        throw e;
      }
      if (msg) {
        const total = this.pushed - this.reader.buffered;
        this.lastFrameBytes = total - this.consumed;
        this.consumed = total;
        this.framesDone++;
        return msg;
      }
      await this.claimPending();
      if (this.eof) {
        if (this.reader.hasPartial) {
          const e = new WireError("ERR_MESSAGE_REJECTED", "truncated frame at end of stream");
          await this.refuse(e.wireCode, e.message);
          throw e;
        }
        return null;
      }
      const left = deadline === undefined ? undefined : deadline - Date.now();
      if (left !== undefined && left <= 0) {
        throw new AtlasError("ERR_TIMEOUT", `no frame from peer within ${timeoutMs! / 1000} s`);
      }
      const chunk = await this.stream.read(left);
      if (chunk === null) this.eof = true;
      else {
        this.pushed += chunk.length;
        this.reader.push(chunk);
      }
    }
  }

  /**
   * Admit the frame in progress (header in, payload not): the header check once per frame, then
   * its declared payload reserved. Refuses it (Error 4001, STOP_SENDING) and throws when either says no.
   */
  private async claimPending(): Promise<void> {
    const len = this.reader.pendingPayload;
    if (len <= this.reserved) return;
    let refusal: HeaderRefusal | null = null;
    if (this.checkHeader && this.checkedFrame !== this.framesDone) {
      this.checkedFrame = this.framesDone;
      refusal = this.checkHeader(this.reader.pendingType, len);
    }
    const budget = this.stream.conn.budget;
    if (!refusal && budget.reserve(len - this.reserved)) {
      this.reserved = len;
      this.reader.reserveForPending();
      return;
    }
    refusal ??= {
      code: "ERR_RATE_LIMITED",
      message: `receive buffer full: a ${len}-byte frame does not fit (${budget.reserved} bytes held on this ` +
        `connection, at most ${budget.limit}; ${budget.pool.used} of ${budget.pool.cap} node-wide)`,
    };
    const err = new AtlasError(refusal.code, refusal.message);
    await this.refuse(err.protocolCode!, refusal.message);
    throw err;
  }

  /**
   * Whether the stream ends after the frames read so far, as far as has arrived now: true once
   * the peer's FIN is here with no bytes after the last frame; false while more bytes are here or
   * the FIN is not (yet). Pulls at most one chunk, which the next `read` goes on from.
   */
  atEnd(): boolean {
    if (this.reader.buffered > 0 || this.reader.hasPartial) return false;
    if (this.eof) return true;
    const chunk = this.stream.readNow();
    if (chunk === undefined) return false;
    if (chunk === null) return (this.eof = true);
    this.pushed += chunk.length;
    this.reader.push(chunk);
    return false;
  }

  write(msg: WireMessage): Promise<void> {
    return this.stream.write(encodeFrame(msg));
  }

  /** Write a final frame with FIN. */
  end(msg?: WireMessage): Promise<void> {
    return this.stream.end(msg ? encodeFrame(msg) : undefined);
  }

  /** Answer a refused frame with an Error frame + FIN, then STOP_SENDING (docs/protocol.md#messages). */
  private async refuse(code: number, message: string): Promise<void> {
    this.stream.stopReading(code);
    if (this.holdRefusal) return void (this.heldRefusal = { type: "Error", code, message });
    try {
      await this.stream.end(encodeFrame({ type: "Error", code, message }));
    } catch {
      // the peer may already be gone
    }
  }
}
