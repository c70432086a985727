/** STUN magic cookie (RFC 5389); RFC 7983 demultiplexing tells STUN from QUIC by it. */
export const STUN_MAGIC_COOKIE = 0x2112a442;

/** True for a STUN message: first two bits 00, at least a 20-byte header, magic cookie at 4..7. */
export function isStunPacket(b: Uint8Array): boolean {
  return b.length >= 20 && (b[0]! & 0xc0) === 0 && b[4] === 0x21 && b[5] === 0x12 && b[6] === 0xa4 && b[7] === 0x42;
}
