/**
 * DIAGNOSTIC ONLY: packet/frame timeline of both bench processes (patches QuicEndpoint.sendPacket,
 * QuicConnection.receive, FramedStream.read/write and AtlasNode.recordSession at run time), appended to
 * /tmp/atlas-trace.log at exit with absolute timestamps so the two processes can be merged with `sort -n`.
 * Datagrams are decoded into their coalesced packets: Initial(n)+Handshake(n)+1RTT(n).
 *   rm -f /tmp/atlas-trace.log; NODE_OPTIONS="--import tsx --import ./bench/tools/diag-trace.ts" BENCH_NO_WRITE=1 BENCH_ONLY=connect node bench/run.ts
 *   sort -n /tmp/atlas-trace.log | less
 */
import { appendFileSync } from "node:fs";
import { QuicEndpoint } from "../../src/transport/endpoint.ts";
import { QuicConnection } from "../../src/transport/connection.ts";
import { FramedStream } from "../../src/wire/framed-stream.ts";
const who = process.argv[1]!.includes("server") ? "S" : "C";
const lines: string[] = [];
const ev = (s: string) => lines.push(`${(performance.timeOrigin + performance.now()).toFixed(3)} ${who} ${s}`);
process.on("exit", () => appendFileSync("/tmp/atlas-trace.log", lines.join("\n") + "\n"));
function vi(b: Uint8Array, o: number): [number, number] {
  const l = 1 << (b[o]! >> 6);
  let v = b[o]! & 0x3f;
  for (let i = 1; i < l; i++) v = v * 256 + b[o + i]!;
  return [v, o + l];
}
function desc(b: Uint8Array): string {
  const out: string[] = [];
  let o = 0;
  while (o < b.length) {
    const b0 = b[o]!;
    if ((b0 & 0x80) === 0) {
      out.push(`1RTT(${b.length - o})`);
      break;
    }
    const t = ["Initial", "0RTT", "Handshake", "Retry"][(b0 & 0x30) >> 4]!;
    let p = o + 5;
    const dl = b[p]!;
    p += 1 + dl;
    const sl = b[p]!;
    p += 1 + sl;
    if (t === "Initial") {
      const [tl, q] = vi(b, p);
      p = q + tl;
    }
    if (t === "Retry") {
      out.push("Retry");
      break;
    }
    const [len, q] = vi(b, p);
    const end = q + len;
    out.push(`${t}(${end - o})`);
    o = end;
  }
  return out.join("+");
}
const cid = (c: QuicConnection) => Buffer.from(c.scid).toString("hex").slice(0, 6);
const oS = QuicEndpoint.prototype.sendPacket;
QuicEndpoint.prototype.sendPacket = function (p, to) {
  ev(`send ${p.length} ${desc(p)}`);
  return oS.call(this, p, to);
};
const oR = QuicConnection.prototype.receive;
QuicConnection.prototype.receive = function (p, f, to) {
  ev(`recv ${p.length} ${desc(p)} conn=${cid(this)}`);
  return oR.call(this, p, f, to);
};
const oW = FramedStream.prototype.write;
FramedStream.prototype.write = function (m) {
  ev(`WRITE ${m.type}`);
  return oW.call(this, m);
};
const oRd = FramedStream.prototype.read;
FramedStream.prototype.read = async function (t) {
  const r = await oRd.call(this, t);
  ev(`READ ${r?.type}`);
  return r;
};
import { AtlasNode } from "../../src/net/node.ts";
/** AtlasNode's private methods patched here, reached by name. */
const nodeProto = AtlasNode.prototype as unknown as Record<
  "recordSession" | "onSessionDone",
  (this: AtlasNode, ...a: unknown[]) => unknown
>;
const oRS = nodeProto.recordSession;
nodeProto.recordSession = async function (...a: unknown[]) {
  ev("recordSession start");
  try {
    return await oRS.apply(this, a);
  } finally {
    ev("recordSession end");
  }
};
const oDone = nodeProto.onSessionDone;
nodeProto.onSessionDone = function (...a: unknown[]) {
  ev("onSessionDone (close writes start)");
  return oDone.apply(this, a);
};
