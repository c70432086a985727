/**
 * How many bytes of frames still arriving the node may hold (docs/protocol.md#transport: a global cap on bytes
 * buffered for unread streams). A frame's declared payload is reserved when its header arrives,
 * before any payload byte is kept, and released when the frame is complete or abandoned; a frame
 * that does not fit is refused at once (Error 4001, STOP_SENDING) instead of being read.
 *
 * Two bounds apply to a connection's reservations: its own (`transport.max_buffered_per_conn`),
 * so one peer cannot take the whole node's share, and the node's (`transport.max_buffered_bytes`),
 * shared by all connections. The first `CONN_FLOOR_BYTES` of every connection do not draw on the
 * shared pool: a well-behaved peer's ordinary messages get through while others hold it full.
 * Worst case, all connections full: max_buffered_bytes + max_connections × CONN_FLOOR_BYTES.
 */

/** Bytes each connection may hold outside the shared pool (its guaranteed share). */
export const CONN_FLOOR_BYTES = 256 * 1024;

/** The node-wide pool: every connection's reservations above its floor draw on it. */
export class BufferPool {
  readonly cap: number;
  private inUse = 0;

  constructor(cap: number) {
    this.cap = cap;
  }

  get used(): number {
    return this.inUse;
  }

  /** @internal */
  take(n: number): boolean {
    if (n > 0 && this.inUse + n > this.cap) return false;
    this.inUse += n;
    return true;
  }

  /** @internal */
  give(n: number): void {
    this.inUse -= n;
  }
}

/** One connection's reservations. */
export class ConnBudget {
  readonly pool: BufferPool;
  readonly limit: number;
  private held = 0;

  constructor(pool: BufferPool, limit: number) {
    this.pool = pool;
    this.limit = limit;
  }

  /** A budget that never refuses (a connection created outside an endpoint, in tests). */
  static unlimited(): ConnBudget {
    return new ConnBudget(new BufferPool(Number.MAX_SAFE_INTEGER), Number.MAX_SAFE_INTEGER);
  }

  get reserved(): number {
    return this.held;
  }

  /** Reserve `n` bytes; false (and nothing reserved) when either bound would be passed. */
  reserve(n: number): boolean {
    if (this.held + n > this.limit) return false;
    if (!this.pool.take(aboveFloor(this.held + n) - aboveFloor(this.held))) return false;
    this.held += n;
    return true;
  }

  release(n: number): void {
    const m = Math.min(n, this.held);
    this.pool.give(aboveFloor(this.held) - aboveFloor(this.held - m));
    this.held -= m;
  }
}

function aboveFloor(n: number): number {
  return Math.max(0, n - CONN_FLOOR_BYTES);
}
