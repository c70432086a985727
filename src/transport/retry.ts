import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

/**
 * Stateless QUIC Retry tokens (RFC 9000 §8.1.2): the server proves a client owns its source
 * address before spending any crypto on it, so per-IP handshake limits cannot be dodged with
 * spoofed sources. Token = ts(4) ‖ odcidLen(1) ‖ odcid ‖ mac(16), mac = HMAC(key, ts‖odcid‖addr).
 */
const TOKEN_TTL_S = 10;

export class RetryTokens {
  private key = randomBytes(32);

  mint(odcid: Uint8Array, addr: string, now = Math.floor(Date.now() / 1000)): Uint8Array {
    const head = new Uint8Array(5 + odcid.length);
    new DataView(head.buffer).setUint32(0, now);
    head[4] = odcid.length;
    head.set(odcid, 5);
    const mac = this.mac(head, addr);
    const out = new Uint8Array(head.length + mac.length);
    out.set(head);
    out.set(mac, head.length);
    return out;
  }

  /** The original DCID when the token is ours, fresh and for this address; otherwise null. */
  verify(token: Uint8Array, addr: string, now = Math.floor(Date.now() / 1000)): Uint8Array | null {
    if (token.length < 5 + 16) return null;
    const len = token[4]!;
    if (token.length !== 5 + len + 16) return null;
    const head = token.subarray(0, 5 + len);
    const mac = token.subarray(5 + len);
    const want = this.mac(head, addr);
    if (!timingSafeEqual(mac, want)) return null;
    const ts = new DataView(token.buffer, token.byteOffset).getUint32(0);
    if (now - ts > TOKEN_TTL_S || ts - now > 1) return null;
    return token.slice(5, 5 + len);
  }

  private mac(head: Uint8Array, addr: string): Uint8Array {
    return createHmac("sha256", this.key).update(head).update(addr).digest().subarray(0, 16);
  }
}
