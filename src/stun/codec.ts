/**
 * The STUN message codec (RFC 5389) from the `stun` package: only its encoder/decoder, never its
 * networking (its sockets pull old dependencies, docs/contributing.md; Atlas sends STUN from its QUIC socket).
 */
import codec, { type StunMessage } from "stun"; // types: ./stun.d.ts (the package ships none)

export type { StunMessage };

export const BINDING_REQUEST = codec.constants.STUN_BINDING_REQUEST!; // 0x0001
export const BINDING_RESPONSE = codec.constants.STUN_BINDING_RESPONSE!; // 0x0101
export const BINDING_ERROR_RESPONSE = codec.constants.STUN_BINDING_ERROR_RESPONSE!; // 0x0111
export const ATTR_FINGERPRINT = codec.constants.STUN_ATTR_FINGERPRINT!;

/** The message type from the first two bytes, without decoding the rest. */
export const messageType = (b: Uint8Array): number => (b[0]! << 8) | b[1]!;

/** The 96-bit transaction ID (bytes 8..19) as hex: the key of pending requests. */
export function transactionKey(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset + 8, 12).toString("hex");
}

export function createMessage(type: number, transactionId?: Uint8Array): StunMessage {
  return codec.createMessage(type, transactionId ? Buffer.from(transactionId) : undefined);
}

export function encodeMessage(m: StunMessage): Uint8Array {
  return codec.encode(m);
}

/** Decode, or null for anything malformed (a hostile datagram never throws out of here). */
export function decodeMessage(b: Uint8Array): StunMessage | null {
  try {
    return codec.decode(Buffer.from(b.buffer, b.byteOffset, b.length));
  } catch {
    return null;
  }
}

/** A message's FINGERPRINT, when present, must be right; a message without one passes. */
export function fingerprintOk(m: StunMessage): boolean {
  if (!m.getAttribute(ATTR_FINGERPRINT)) return true;
  try {
    return codec.validateFingerprint(m);
  } catch {
    return false;
  }
}
