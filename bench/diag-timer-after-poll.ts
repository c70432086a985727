/**
 * DIAGNOSTIC ONLY (not used by `npm run bench`; patches private internals of src/transport/connection.ts
 * at run time to measure a proposed fix). Loss/idle timers of quiche are acted on after the poll phase
 * (setImmediate), so datagrams already waiting in the socket reach quiche before a PTO fires.
 *   NODE_OPTIONS="--import tsx --import ./bench/diag-timer-after-poll.ts" BENCH_NO_WRITE=1 BENCH_ONLY=connect node bench/run.ts
 * (NODE_OPTIONS reaches the server child too.)
 */
import { QuicConnection } from "../src/transport/connection.ts";
const P = QuicConnection.prototype as any;
P.armTimer = function (this: any) {
  const ms = this.native.timeout();
  if (ms === null) { if (this.timer) clearTimeout(this.timer); this.timer = null; return; }
  const at = Date.now() + ms;
  if (this.timer && Math.abs(at - this.timerAt) < 1) return;
  if (this.timer) clearTimeout(this.timer);
  this.timerAt = at;
  this.timer = setTimeout(() => {
    this.timer = null;
    if (this.gone) return;
    setImmediate(() => { if (this.gone) return; this.native.onTimeout(); this.process(); });
  }, ms);
};
