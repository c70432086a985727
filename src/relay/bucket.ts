/**
 * A token bucket in bytes (docs/protocol.md#relay: per pipe direction, burst of one second). `rate` 0 means no
 * limit. Refilled lazily from the clock on each `take`, so an idle pipe costs nothing.
 */
export class TokenBucket {
  private readonly rate: number;
  private readonly burst: number;
  private tokens: number;
  private last: number;

  constructor(bytesPerSecond: number, now = performance.now()) {
    this.rate = bytesPerSecond;
    this.burst = bytesPerSecond;
    this.tokens = bytesPerSecond;
    this.last = now;
  }

  /** Spend `n` bytes if the bucket holds them; false means the packet is over the limit. */
  take(n: number, now = performance.now()): boolean {
    if (this.rate <= 0) return true;
    const t = Math.min(this.burst, this.tokens + ((now - this.last) * this.rate) / 1000);
    this.last = now;
    if (t < n) {
      this.tokens = t;
      return false;
    }
    this.tokens = t - n;
    return true;
  }
}
