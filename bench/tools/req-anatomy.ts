/**
 * Diagnostic (not part of `npm run bench`): where the time of a 1 KiB request goes with 8 in
 * flight between two processes (the server a child pinned to CPU 1; run the client on CPU 0):
 *   taskset -c 0 node --import tsx bench/tools/req-anatomy.ts [requests=4000]
 * Per round (ROUNDS=n, default 3; the first is mostly JIT warm-up): requests/s and latency
 * percentiles, CPU per request of each process (busy polls included), the client's system calls
 * per request (atlas_udp stats) and busy polls, GC pauses on each side, and the gaps with no
 * request completed for more than 0.8 ms. BINDING=1 also times every quiche binding call per
 * request on each side (adds ~0.1 µs per call); BINDING=2 counts calls that returned null apart
 * (`send→null`: nothing left to send). SERVER_NODE_ARGS="--flag …" passes V8/Node flags to the
 * server child (give the client the same on the command line).
 */
import { PerformanceObserver } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { QuicConnection } from "../../src/transport/connection.ts";
import { HOST, median, percentile, spawnProbeServer, startAckServer, startNode } from "../common.ts";
import { message } from "../phases/transport.ts";

const gcPauses: number[] = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcPauses.push(e.duration);
}).observe({ entryTypes: ["gc"] });

/** Count and time every quiche binding call (BINDING=1): name → [calls, ms]. */
const binding = new Map<string, [number, number]>();
let timing = false;
if (process.env.BINDING) {
  const proto = QuicConnection.prototype as unknown as { receive: (...a: unknown[]) => void };
  const receive = proto.receive;
  let wrapped = false;
  proto.receive = function (this: { native: object }, ...a: unknown[]) {
    if (!wrapped) {
      wrapped = true;
      const p = Object.getPrototypeOf(this.native) as Record<string, unknown>;
      for (const k of Object.getOwnPropertyNames(p)) {
        const f = p[k];
        if (typeof f !== "function" || k === "constructor") continue;
        p[k] = function (this: unknown, ...args: unknown[]) {
          if (!timing) return f.apply(this, args);
          const t0 = performance.now();
          const r = f.apply(this, args);
          const key = process.env.BINDING === "2" && r === null ? k + "→null" : k;
          const e = binding.get(key) ?? [0, 0];
          e[0]++;
          e[1] += performance.now() - t0;
          binding.set(key, e);
          return r;
        };
      }
    }
    return receive.apply(this, a);
  };
}
const bindingReport = (side: string, n: number) =>
  [...binding].sort((a, b) => b[1][1] - a[1][1]).map(([k, [c, ms]]) =>
    `  ${side} ${k}: ${(c / n).toFixed(2)} calls, ${(ms * 1000 / n).toFixed(2)} µs per request`
  ).join("\n");

const gcLine = (side: string) =>
  `${side} GC ${gcPauses.length} pauses, ${gcPauses.reduce((a, b) => a + b, 0).toFixed(1)} ms, longest ${
    Math.max(0, ...gcPauses).toFixed(2)
  } ms`;

const n = Number(process.argv[3] ?? process.argv[2] ?? 4000);

if (process.argv[2] === "server") {
  const srv = await startAckServer("req-anatomy-server");
  process.stdout.write(`${srv.node.endpoint.local.port}\n`);
  let cpu = process.cpuUsage();
  // commands on stdin: "start" a round, "stop" it (report on stderr)
  createInterface({ input: process.stdin }).on("line", (cmd) => {
    if (cmd === "start") {
      cpu = process.cpuUsage();
      gcPauses.length = 0;
      binding.clear();
      timing = true;
    } else if (cmd === "stop") {
      timing = false;
      const c = process.cpuUsage(cpu);
      process.stderr.write(
        `  server CPU ${((c.user + c.system) / n).toFixed(1)} µs per request (system ${(c.system / n).toFixed(1)}); ${
          gcLine("server")
        }\n${bindingReport("server", n)}\n`,
      );
    }
  });
  process.stdin.on("end", () => process.exit(0));
} else {
  const { child, port } = await spawnProbeServer(
    fileURLToPath(import.meta.url),
    [String(n)],
    process.env.SERVER_NODE_ARGS?.split(" ").filter(Boolean),
  );
  const cli = await startNode("req-anatomy-client", false);
  const s = await cli.node.connectTo({ host: HOST, port });
  const one = async () => void (await s.request(message(cli, s.nodeId), 10_000));
  for (let i = 0; i < 500; i++) await one();
  const sock = (cli.node.endpoint as unknown as { socket: { stats?: () => number[] } }).socket;
  const addon = (sock as unknown as { addon?: { spinStats(): number[] } }).addon;
  const pause = () => new Promise((r) => setTimeout(r, 50));
  for (let round = 0; round < Number(process.env.ROUNDS ?? 3); round++) {
    child.stdin!.write("start\n");
    await pause();
    gcPauses.length = 0;
    binding.clear();
    timing = true;
    const u0 = sock.stats?.() ?? [];
    const w0 = addon?.spinStats() ?? [0, 0];
    const cpu0 = process.cpuUsage();
    const done: number[] = [];
    const lat: number[] = [];
    let issued = 0;
    const t0 = performance.now();
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (issued < n) {
        issued++;
        const st = performance.now();
        await one();
        const end = performance.now();
        lat.push(end - st);
        done.push(end);
      }
    }));
    const ms = performance.now() - t0;
    timing = false;
    const c = process.cpuUsage(cpu0);
    const u1 = sock.stats?.() ?? [];
    const w1 = addon?.spinStats() ?? [0, 0];
    done.sort((a, b) => a - b);
    const gaps = done.slice(1).map((t, i) => t - done[i]!).filter((g) => g > 0.8);
    const mean = lat.reduce((a, b) => a + b, 0) / lat.length;
    console.log(
      `round ${round}: ${(n / (ms / 1000)).toFixed(0)} requests/s; latency mean ${mean.toFixed(3)} p50 ${
        median(lat).toFixed(3)
      } p90 ${percentile(lat, 90).toFixed(3)} p99 ${percentile(lat, 99).toFixed(3)} ms; ${gaps.length} gaps > 0.8 ms (${
        gaps.reduce((a, b) => a + b, 0).toFixed(1)
      } of ${ms.toFixed(1)} ms)`,
    );
    console.log(
      `  client CPU ${((c.user + c.system) / n).toFixed(1)} µs per request (system ${(c.system / n).toFixed(1)}), ${
        (100 * (c.user + c.system) / 1000 / ms).toFixed(0)
      } % of its core; ${gcLine("client")}`,
    );
    if (u0.length) {
      console.log(
        `  client sendmmsg ${((u1[0]! - u0[0]!) / n).toFixed(2)}, recvmmsg ${((u1[3]! - u0[3]!) / n).toFixed(2)}, ` +
          `datagrams in ${((u1[4]! - u0[4]!) / n).toFixed(2)} per request; busy polls ${w1[0]! - w0[0]!} (${
            w1[1]! - w0[1]!
          } ended by an event)`,
      );
    }
    if (binding.size) console.log(bindingReport("client", n));
    child.stdin!.write("stop\n");
    await pause();
  }
  child.stdin!.end();
  process.exit(0);
}
