import { createHmac, hkdfSync, randomBytes } from "node:crypto";

/**
 * Stateless resets (RFC 9000 §10.3), so that a peer still talking to a connection this node lost
 * in a crash learns it at its next packet instead of at a request timeout.
 *
 * The token of each connection ID we issue is HMAC(key, cid), and the key is derived from the
 * node's private key: a node restarted from the same home computes the same token for a
 * connection ID its previous run handed out, with no state kept. quiche announces the token of
 * a server's connection ID (`stateless_reset_token` transport parameter) and, on the client side,
 * recognises a reset carrying it; clients announce none, so only the side that dialled can be
 * reset (docs/decisions.md, 2026-12-02).
 */

/** Bytes of a reset token. */
export const RESET_TOKEN_LEN = 16;
/**
 * The smallest packet answered. A short-header packet of ours is at least 1 + 16 (DCID) + 4
 * (packet number, as header protection samples it) + 16 (sample/tag) bytes; anything shorter
 * is not one, and a reset must be smaller than what triggered it (§10.3.3, no loops).
 */
export const MIN_RESET_TRIGGER = 1 + 16 + 4 + 16;
/** Largest reset sent: §10.3 asks for ≥ 21 bytes; more than this would only add bytes. */
const MAX_RESET_LEN = 43;
/** Resets sent per second at most (a burst of as many): a flood of junk costs one HMAC each. */
export const RESETS_PER_SECOND = 100;

export class StatelessResets {
  private key: Buffer;
  private tokens = RESETS_PER_SECOND;
  private refilledAt = Date.now();

  constructor(keyPem: string) {
    this.key = Buffer.from(hkdfSync("sha256", keyPem, "atlas", "atlas stateless reset v1", 32));
  }

  /** The token of connection ID `cid`. */
  token(cid: Uint8Array): Uint8Array {
    return new Uint8Array(createHmac("sha256", this.key).update(cid).digest().subarray(0, RESET_TOKEN_LEN));
  }

  /** The token as quiche's config takes it: the 16 bytes as a big-endian u128. */
  tokenValue(cid: Uint8Array): bigint {
    return BigInt("0x" + Buffer.from(this.token(cid)).toString("hex"));
  }

  /**
   * The reset for `packet` (a short-header packet for connection ID `dcid`, which we do not
   * know), or null when it must not be answered: too small, or over the rate.
   */
  answer(packet: Uint8Array, dcid: Uint8Array, now = Date.now()): Uint8Array | null {
    if (packet.length < MIN_RESET_TRIGGER || !this.take(now)) return null;
    const len = Math.min(packet.length - 1, MAX_RESET_LEN);
    const out = new Uint8Array(randomBytes(len));
    out[0] = 0x40 | (out[0]! & 0x3f); // short header, fixed bit set; the rest unpredictable
    out.set(this.token(dcid), len - RESET_TOKEN_LEN);
    return out;
  }

  private take(now: number): boolean {
    const elapsed = Math.max(0, now - this.refilledAt);
    this.tokens = Math.min(RESETS_PER_SECOND, this.tokens + (elapsed * RESETS_PER_SECOND) / 1000);
    this.refilledAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
