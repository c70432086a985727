/**
 * Diagnostic (not part of `npm run bench`): what a stream per request costs with 8 requests in
 * flight, against the same requests pipelined on one stream (answered in order on it), on bare
 * QUIC connections between two processes (the server a child pinned to CPU 1; run this on
 * CPU 0). No Atlas frames: each request is [u32 length][1 KiB], each answer [u32 length][64 bytes].
 * The question it answers: how much of a request's cost is its own stream and its answer's own
 * packet (quiche puts one STREAM frame in a packet: bench/RESULTS.md item 13).
 *   taskset -c 0 node --import tsx bench/tools/pipeline-probe.ts [requests=4000] [rounds=6]
 */
import { fileURLToPath } from "node:url";
import { median } from "../common.ts";
import { spawnProbeServer } from "../common.ts";
import { bindTestEndpoint } from "../../test/helpers/endpoint.ts";
import type { QuicStream } from "../../src/transport/stream.ts";

const BODY = 1024;
const ANSWER = 64;
const frame = (n: number) => {
  const b = new Uint8Array(4 + n);
  new DataView(b.buffer).setUint32(0, n);
  return b;
};

/** Calls `each(message)` for every [u32 length][payload] read off `st`, in order; resolves at FIN. */
async function messages(st: QuicStream, each: (m: Uint8Array) => void): Promise<void> {
  let buf = new Uint8Array(0);
  for (let ch = await st.read(10_000); ch !== null; ch = await st.read(10_000)) {
    const next = new Uint8Array(buf.length + ch.length);
    next.set(buf);
    next.set(ch, buf.length);
    buf = next;
    while (buf.length >= 4) {
      const n = new DataView(buf.buffer, buf.byteOffset).getUint32(0);
      if (buf.length < 4 + n) break;
      each(buf.subarray(4, 4 + n));
      buf = buf.subarray(4 + n);
    }
  }
}

if (process.argv[2] === "server") {
  const ep = await bindTestEndpoint();
  const answer = frame(ANSWER);
  ep.onConnection = (c) => {
    c.onStream = (st) =>
      void (async () => {
        await messages(st, () => void st.write(answer));
        await st.end();
      })().catch(() => st.abort(1));
  };
  process.stdout.write(`${ep.local.port}\n`);
  process.stdin.resume();
  process.stdin.on("end", () => process.exit(0));
} else {
  const n = Number(process.argv[2] ?? 4000);
  const rounds = Number(process.argv[3] ?? 6);
  const { child, port } = await spawnProbeServer(fileURLToPath(import.meta.url));
  const ep = await bindTestEndpoint();
  const conn = ep.connect({ host: "127.0.0.1", port });
  await conn.established;
  const req = frame(BODY);

  /** A stream per request: open, write with FIN, read the answer to the peer's FIN. */
  const perStream = async () => {
    const st = conn.openStream();
    await st.end(req);
    await messages(st, () => {});
  };

  /** One stream kept open; answers come back in order and settle the oldest waiter. */
  const pipe = conn.openStream();
  const waiting: (() => void)[] = [];
  const piped = messages(pipe, () => waiting.shift()!());
  const pipelined = () =>
    new Promise<void>((resolve) => {
      waiting.push(resolve);
      void pipe.write(req);
    });

  const run = async (one: () => Promise<void>, count: number) => {
    let left = count;
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (left-- > 0) await one();
    }));
    const c = process.cpuUsage(c0);
    return { rate: count / ((performance.now() - t0) / 1000), cpu: (c.user + c.system) / count };
  };
  const modes = { "a stream per request": perStream, "one pipelined stream": pipelined };
  const got = new Map<string, { rate: number[]; cpu: number[] }>();
  for (const one of Object.values(modes)) await run(one, n); // warm-up
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 ? Object.entries(modes).reverse() : Object.entries(modes);
    for (const [name, one] of order) {
      const x = await run(one, n);
      const g = got.get(name) ?? { rate: [], cpu: [] };
      g.rate.push(x.rate);
      g.cpu.push(x.cpu);
      got.set(name, g);
    }
  }
  for (const [name, g] of got) {
    console.log(
      `${name}: ${g.rate.map((x) => x.toFixed(0)).join(", ")} per s (median ${median(g.rate).toFixed(0)}); ` +
        `client CPU ${g.cpu.map((x) => x.toFixed(1)).join(", ")} µs per request (median ${median(g.cpu).toFixed(1)})`,
    );
  }
  await pipe.end();
  await piped;
  await ep.close();
  child.stdin!.end();
}
