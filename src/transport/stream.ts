import { AtlasError } from "../errors.ts";
import type { QuicConnection } from "./connection.ts";
import { quiche } from "./native.ts";
import { BURST_SLICE_MS } from "../config/durations.ts";

/**
 * Reads land in one shared scratch buffer and are copied out at their exact size: a fresh 64 KiB
 * buffer per read made every small frame cost a large allocation (and GC pauses of several ms).
 */
const scratch = new Uint8Array(65536);

interface PendingWrite {
  data: Uint8Array;
  fin: boolean;
  resolve: () => void;
  reject: (e: Error) => void;
}

/**
 * One bidirectional QUIC stream. Reads pull from quiche on demand, so an unread stream holds
 * back its peer through flow control instead of filling our memory; writes resolve once quiche
 * has accepted every byte (backpressure). Every read may carry a deadline.
 */
export class QuicStream {
  readonly id: number;
  readonly conn: QuicConnection;
  /** How long a turn may run before this stream's writes leave early (connection.ts markWritten). */
  burstSliceMs = BURST_SLICE_MS;
  /** @internal the connection's dispatch turn in which this stream was last offered its data. */
  readTurn = 0;
  private waiter: {
    resolve: (v: Uint8Array | null) => void;
    reject: (e: Error) => void;
    timer?: ReturnType<typeof setTimeout>;
  } | null = null;
  private readDone = false; // FIN consumed, reset, or stopped by us
  private readError: Error | null = null;
  private writes: PendingWrite[] = [];
  private writeDone = false; // FIN accepted by quiche, or reset
  private writeError: Error | null = null;

  constructor(conn: QuicConnection, id: number) {
    this.conn = conn;
    this.id = id;
  }

  get isLocal(): boolean {
    return (this.id & 1) === (this.conn.isClient ? 0 : 1);
  }

  get finished(): boolean {
    return this.readDone && this.writeDone && this.writes.length === 0;
  }

  /** Next chunk of bytes, or null at end of stream. Rejects with ERR_TIMEOUT after `timeoutMs`. */
  read(timeoutMs?: number): Promise<Uint8Array | null> {
    if (this.waiter) return Promise.reject(new AtlasError("ERR_IO", "concurrent read on one stream"));
    const now = this.pull();
    if (now !== undefined) return now instanceof Error ? Promise.reject(now) : Promise.resolve(now);
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
      if (timeoutMs !== undefined && timeoutMs > 0) {
        this.waiter.timer = setTimeout(() => {
          this.waiter = null;
          reject(new AtlasError("ERR_TIMEOUT", `no data from peer within ${timeoutMs / 1000} s`));
        }, timeoutMs);
      }
    });
  }

  /**
   * The next chunk if one is there now: bytes, null at end of stream, undefined when nothing has
   * arrived yet (or the stream failed: the next `read` reports that).
   */
  readNow(): Uint8Array | null | undefined {
    if (this.waiter) return undefined;
    const v = this.pull();
    return v instanceof Error ? undefined : v;
  }

  /** Queue bytes; resolves when quiche has taken all of them. */
  write(data: Uint8Array, fin = false): Promise<void> {
    if (this.writeError) return Promise.reject(this.writeError);
    if (this.writeDone) return Promise.reject(new AtlasError("ERR_CLOSED", "write after end of stream"));
    if (fin) this.writeDone = true;
    return new Promise((resolve, reject) => {
      this.writes.push({ data, fin, resolve, reject });
      if (this.flushWrites()) this.conn.wantsWritable(this);
      this.conn.markWritten(this.burstSliceMs);
    });
  }

  /** Send FIN (after anything queued). */
  end(data: Uint8Array = new Uint8Array(0)): Promise<void> {
    return this.write(data, true);
  }

  /** Abort our sending side (RESET_STREAM). */
  reset(code = 0): void {
    if (this.writeDone && this.writes.length === 0) return;
    this.tryShutdown(quiche.Shutdown.Write, code);
    this.failWrites(new AtlasError("ERR_RESET", "stream reset locally"));
    this.writeDone = true;
    this.conn.streamMaybeDone(this);
  }

  /** Tell the peer we will read no more (STOP_SENDING); used after an oversized frame header. */
  stopReading(code = 0): void {
    if (this.readDone) return;
    this.discardBuffered();
    this.tryShutdown(quiche.Shutdown.Read, code);
    this.readDone = true;
    this.settleRead(null);
    this.conn.streamMaybeDone(this);
  }

  /** Abort both directions. */
  abort(code = 0): void {
    this.stopReading(code);
    this.reset(code);
  }

  // ---- driven by QuicConnection ----

  /**
   * @internal quiche reported this stream readable.
   * @returns true when a waiting reader was handed data (it may answer in a moment). */
  onReadable(): boolean {
    if (!this.waiter) return false;
    const v = this.pull();
    if (v === undefined) return false;
    if (v instanceof Error) this.settleError(v);
    else this.settleRead(v);
    return true;
  }

  /**
   * @internal push queued writes into quiche; returns true while some remain.
   * Only as many bytes as `streamCapacity` allows are offered: offering more makes quiche 0.18
   * queue a DATA_BLOCKED frame on every call, and with a retry per incoming ACK the two nodes
   * ping-pong thousands of packets a second while a write waits for the peer to read.
   * Once the peer's side is done, the last byte written is held back (`release` false) so that
   * an `end()` later in this turn sends the FIN with data (docs/transport.md, "Bare FINs").
   */
  flushWrites(release = false): boolean {
    const n = this.conn.native;
    while (this.writes.length > 0) {
      const w = this.writes[0]!;
      // A bare FIN right behind this write goes with its last byte instead of on its own.
      const finNext = !w.fin && this.writes[1]?.fin === true && this.writes[1].data.length === 0;
      let written: number | null;
      try {
        if (w.data.length === 0) {
          // A bare FIN whose data went out earlier: quiche 0.18 counts a stream complete, and
          // forgets it, once the data before its FIN is acknowledged, whether the FIN was sent or
          // not; the peer then waits for the end forever. So a FIN at the peer's flow-control
          // limit (which quiche takes but cannot send) waits here for credit, and any other
          // leaves at once, before an ACK processed later in this turn can complete the stream.
          if (w.fin && n.streamCapacity(this.id) <= 0) return true;
          written = n.streamSend(this.id, w.data, w.fin);
          if (w.fin) this.conn.sendNow();
        } else {
          const hold = !release && !w.fin && !finNext && this.readDone && this.writes.length === 1;
          const want = hold ? w.data.length - 1 : w.data.length;
          if (want === 0) return this.holdTail(w);
          const cap = n.streamCapacity(this.id);
          if (cap <= 0) return true;
          const all = cap >= want && want === w.data.length; // the whole write goes now
          const chunk = all ? w.data : w.data.subarray(0, Math.min(cap, want));
          written = n.streamSend(this.id, chunk, all && (w.fin || finNext));
        }
      } catch (e) {
        this.writeError = streamError(e, "write");
        this.failWrites(this.writeError);
        this.conn.streamMaybeDone(this);
        return false;
      }
      written ??= 0;
      if (w.data.length > 0 && written < w.data.length) {
        w.data = w.data.subarray(written);
        if (written === 0) return true;
        continue;
      }
      this.writes.shift();
      w.resolve();
      if (finNext) this.writes.shift()!.resolve();
    }
    this.conn.streamMaybeDone(this);
    return false;
  }

  /**
   * Keep a write's last byte until the end of the turn: its promise resolves now (the rest is
   * in quiche), and the connection hands the byte over then unless an `end()` took it first.
   */
  private holdTail(w: PendingWrite): false {
    w.resolve();
    w.resolve = () => {};
    this.conn.holdTail(this);
    return false;
  }

  get hasPendingWrites(): boolean {
    return this.writes.length > 0;
  }

  /** @internal the connection is gone. */
  fail(err: Error): void {
    this.readError ??= err;
    if (!this.readDone) {
      this.readDone = true;
      this.settleError(err);
    }
    this.writeError ??= err;
    this.writeDone = true;
    this.failWrites(err);
  }

  // ---- internals ----

  /** Data, null for FIN, an Error, or undefined when nothing is available yet. */
  private pull(): Uint8Array | null | Error | undefined {
    if (this.readError) return this.readError;
    if (this.readDone) return null;
    let r: [number, boolean] | null;
    try {
      r = this.conn.native.streamRecv(this.id, scratch);
    } catch (e) {
      this.readError = streamError(e, "read");
      this.readDone = true;
      this.conn.streamMaybeDone(this);
      return this.readError;
    }
    if (r === null) return undefined;
    const [len, fin] = r;
    this.conn.markDirty(); // reading opens the flow-control window
    if (fin) {
      this.readDone = true;
      this.conn.streamMaybeDone(this);
      if (len === 0) return null;
    }
    return scratch.slice(0, len);
  }

  private settleRead(v: Uint8Array | null): void {
    const w = this.waiter;
    if (!w) return;
    this.waiter = null;
    if (w.timer) clearTimeout(w.timer);
    w.resolve(v);
  }

  private settleError(e: Error): void {
    const w = this.waiter;
    if (!w) return;
    this.waiter = null;
    if (w.timer) clearTimeout(w.timer);
    w.reject(e);
  }

  private failWrites(e: Error): void {
    const ws = this.writes;
    this.writes = [];
    for (const w of ws) w.reject(e);
  }

  /**
   * Read out and drop what quiche holds for this stream before it is shut for reading: quiche 0.18
   * discards it at the shutdown without returning its connection-level credit (MAX_DATA), so a
   * few large streams stopped mid-way left the connection unable to send anything on any stream
   * (docs/transport.md, "Traps in the quiche binding").
   */
  private discardBuffered(): void {
    const n = this.conn.native;
    try {
      for (let r = n.streamRecv(this.id, scratch); r !== null && !r[1]; r = n.streamRecv(this.id, scratch));
    } catch {
      // reset or unknown: nothing buffered to return
    }
  }

  private tryShutdown(dir: number, code: number): void {
    try {
      this.conn.native.streamShutdown(this.id, dir, code);
      this.conn.markDirty();
    } catch {
      // already finished in that direction: nothing to tell the peer
    }
  }
}

function streamError(e: unknown, op: string): AtlasError {
  const msg = e instanceof Error ? e.message : String(e);
  if (msg.startsWith("StreamReset")) return new AtlasError("ERR_RESET", `peer reset the stream (${msg})`);
  if (msg.startsWith("StreamStopped")) return new AtlasError("ERR_RESET", `peer stopped reading the stream (${msg})`);
  if (msg.startsWith("InvalidStreamState")) return new AtlasError("ERR_RESET", `stream no longer exists (${msg})`);
  return new AtlasError("ERR_IO", `stream ${op} failed: ${msg}`);
}
