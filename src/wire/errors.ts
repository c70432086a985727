/**
 * The one error type of the wire layer: a frame that cannot be decoded, or a message that cannot be
 * encoded. It carries the protocol code to answer with in an Error frame and, when the header was
 * readable, the frame's type byte, so the session can say which message it refused.
 */
import { AtlasError, ProtocolCode } from "../errors.ts";

export type WireCodeName = "ERR_PROTOCOL_VERSION" | "ERR_PAYLOAD_TOO_LARGE" | "ERR_MESSAGE_REJECTED";

/**
 * A frame that cannot be decoded, or a message that cannot be encoded.
 * `wireCode` is the protocol code to answer with in an Error frame: 1001 for a bad envelope
 * version, 2002 for a payload over the limit, 2003 for everything else.
 */
export class WireError extends AtlasError {
  readonly wireCode: number;
  /** The frame's type byte, when the header was readable. */
  readonly frameType: number | undefined;
  constructor(code: WireCodeName, message: string, opts: { cause?: unknown; frameType?: number } = {}) {
    super(code, message, opts.cause === undefined ? {} : { cause: opts.cause });
    this.name = "WireError";
    this.wireCode = ProtocolCode[code];
    this.frameType = opts.frameType;
  }
}

/** A 2003 (ERR_MESSAGE_REJECTED) WireError. */
export function rejected(message: string, frameType?: number, cause?: unknown): WireError {
  return new WireError("ERR_MESSAGE_REJECTED", message, { frameType, cause });
}
