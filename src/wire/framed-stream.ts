import { AtlasError } from "../errors.ts";
import type { QuicStream } from "../transport/stream.ts";
import { encodeFrame, FrameReader, MAX_PAYLOAD, WireError } from "./frame.ts";
import type { WireMessage } from "./messages.ts";

/**
 * Atlas frames over one QUIC stream. Reads carry a deadline; an oversized or malformed frame
 * is answered with an Error frame (FIN) and the stream stops reading (SPEC §5).
 */
export class FramedStream {
  readonly stream: QuicStream;
  private reader: FrameReader;
  private eof = false;
  private pushed = 0;
  private consumed = 0;
  /** Size (header + payload) of the frame `read` returned last: what rate limits count. */
  lastFrameBytes = 0;

  constructor(stream: QuicStream, maxPayload = MAX_PAYLOAD) {
    this.stream = stream;
    this.reader = new FrameReader(maxPayload);
  }

  set maxPayload(n: number) {
    this.reader.maxPayload = n;
  }

  /**
   * The next frame, or null at a clean end of stream. Throws WireError for malformed input
   * (after answering it on the stream), ERR_TIMEOUT past the deadline, ERR_RESET if reset.
   */
  async read(timeoutMs?: number): Promise<WireMessage | null> {
    const deadline = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
    for (;;) {
      let msg: WireMessage | null;
      try {
        msg = this.reader.next();
      } catch (e) {
        if (e instanceof WireError) await this.refuse(e);
        throw e;
      }
      if (msg) {
        const total = this.pushed - this.reader.buffered;
        this.lastFrameBytes = total - this.consumed;
        this.consumed = total;
        return msg;
      }
      if (this.eof) {
        if (this.reader.hasPartial) {
          const e = new WireError("ERR_MESSAGE_REJECTED", "truncated frame at end of stream");
          await this.refuse(e);
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

  write(msg: WireMessage): Promise<void> {
    return this.stream.write(encodeFrame(msg));
  }

  /** Write a final frame with FIN. */
  end(msg?: WireMessage): Promise<void> {
    return this.stream.end(msg ? encodeFrame(msg) : undefined);
  }

  /** Answer a decoding error with an Error frame + FIN, then STOP_SENDING (SPEC §5). */
  private async refuse(e: WireError): Promise<void> {
    try {
      await this.stream.end(encodeFrame({ type: "Error", code: e.wireCode, message: e.message }));
    } catch {
      // the peer may already be gone
    }
    this.stream.stopReading(e.wireCode);
  }
}
