/**
 * DIAGNOSTIC ONLY (patches private internals of src/transport/stream.ts at run time). pull() reads into
 * one shared scratch buffer and copies out what was read, instead of allocating a zeroed 64 KiB
 * Uint8Array on every call (half of which find no data).
 *   NODE_OPTIONS="--import tsx --import ./bench/diag-pull-scratch.ts" BENCH_NO_WRITE=1 BENCH_ONLY=bulk node bench/run.ts
 */
import { QuicStream } from "../src/transport/stream.ts";
import { AtlasError } from "../src/errors.ts";
const scratch = new Uint8Array(65536);
const P = QuicStream.prototype as any;
P.pull = function (this: any) {
  if (this.readError) return this.readError;
  if (this.readDone) return null;
  let r: [number, boolean] | null;
  try { r = this.conn.native.streamRecv(this.id, scratch); } catch (e) {
    this.readError = new AtlasError("ERR_IO", String(e)); this.readDone = true; this.conn.streamMaybeDone(this); return this.readError;
  }
  if (r === null) return undefined;
  const [len, fin] = r;
  this.conn.markDirty();
  if (fin) { this.readDone = true; this.conn.streamMaybeDone(this); if (len === 0) return null; }
  return scratch.slice(0, len);
};
