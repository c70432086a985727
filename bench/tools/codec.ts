/**
 * Diagnostic (not part of `npm run bench`): frame encode and decode speed of a Message by body
 * size (1 KiB … 4 MiB), the event-loop time a large message costs a node.
 *   taskset -c 0 node --import tsx bench/tools/codec.ts [rounds=2]
 */
import { decodeFrame, encodeFrame, type WireMessage } from "../../src/wire/index.ts";

const FROM = "atlas_" + "a".repeat(64);
const TO = "atlas_" + "b".repeat(64);

for (let round = 0; round < Number(process.argv[2] ?? 2); round++) {
  for (const size of [1024, 64 * 1024, 1024 * 1024, 4 * 1024 * 1024 - 1024]) {
    const body = JSON.stringify({ text: "x".repeat(size - 11) });
    const m: WireMessage = {
      type: "Message",
      id: "msg_01234567-89ab-cdef-0123-456789abcdef",
      from: FROM,
      to: TO,
      timestamp: 1,
      body,
    };
    const count = Math.max(5, Math.floor(2e7 / size));
    let frame = encodeFrame(m);
    let t = performance.now();
    for (let i = 0; i < count; i++) frame = encodeFrame(m);
    const enc = (performance.now() - t) / count;
    t = performance.now();
    for (let i = 0; i < count; i++) decodeFrame(frame);
    const dec = (performance.now() - t) / count;
    const rate = (ms: number) => `${(size / ms / 1000).toFixed(0)} MB/s`;
    console.log(
      `round ${round}, body ${size} B: encode ${(enc * 1000).toFixed(1)} µs (${rate(enc)}), decode ${
        (dec * 1000).toFixed(1)
      } µs (${rate(dec)})`,
    );
  }
}
