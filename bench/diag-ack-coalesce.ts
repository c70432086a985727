/**
 * DIAGNOSTIC ONLY (patches private internals of src/transport/connection.ts at run time). After received
 * packets are dispatched, the flush waits one turn, so a reply written by promise continuations
 * (Pong, MessageAck) leaves in the same packet as the ACK instead of an ACK-only packet first.
 *   NODE_OPTIONS="--import tsx --import ./bench/diag-ack-coalesce.ts" BENCH_NO_WRITE=1 BENCH_ONLY=rtt node bench/run.ts
 */
import { QuicConnection } from "../src/transport/connection.ts";
/** QuicConnection with its private fields and methods, which this patch reads and calls by name. */
// deno-lint-ignore no-explicit-any -- a run-time patch of private internals; no public type describes them
type Internals = any;
const P = QuicConnection.prototype as Internals;
const orig = P.process;
P.process = function (this: Internals) {
  if (this.gone) return;
  if (this.gotPackets && !this._deferred) {
    const n = this.native;
    if (!this.isEstablished && n.isEstablished()) {
      this.isEstablished = true;
      this.resolveEstablished();
    }
    this.gotPackets = false;
    if (this.isEstablished) {
      this.dispatchReadable();
      if (this.onDatagram) this.dispatchDatagrams();
    }
    for (const s of this.writers) if (!s.flushWrites()) this.writers.delete(s);
    this._deferred = true;
    setImmediate(() => {
      this._deferred = false;
      orig.call(this);
    });
    return;
  }
  if (this._deferred) return; // the deferred turn will flush
  return orig.call(this);
};
