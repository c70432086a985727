/**
 * Diagnostic (not part of `npm run bench`): the server-side memory of a bare QUIC connection
 * (quiche + our QuicConnection, no Atlas handshake, no session), to set beside the idle phase's
 * Atlas session figure. The server is a child (run with --expose-gc, GC forced before each
 * reading); 500 client endpoints in this process connect to it, 16 at a time.
 *   node --import tsx bench/tools/mem-bare-quic.ts
 */
import { fork } from "node:child_process";
import { identityFromSeed } from "../../src/identity/identity.ts";
import { generateSeed } from "../../src/identity/keys.ts";
import { QuicEndpoint } from "../../src/transport/endpoint.ts";
import { transportOptions } from "../../src/transport/options.ts";
import { benchConfig, HOST } from "../common.ts";
// The bench's raised limits: 500 connections from one address would trip the defaults.
const bind = () => {
  const id = identityFromSeed(generateSeed());
  return QuicEndpoint.bind({
    ...transportOptions(benchConfig()),
    host: HOST,
    port: 0,
    tls: { keyPem: id.keyPem, certPem: id.certPem },
  });
};
if (process.argv[2] === "server") {
  const ep = await bind();
  let n = 0;
  ep.onConnection = (c) => {
    n++;
    c.onStream = () => {};
  };
  process.on("message", async (m: unknown) => {
    if (m === "mem") {
      const gc = (globalThis as { gc?: () => void }).gc;
      for (let i = 0; i < 3; i++) gc?.();
      await new Promise((r) => setTimeout(r, 300));
      process.send!({
        rss: process.memoryUsage().rss,
        n,
        heap: process.memoryUsage().heapUsed + process.memoryUsage().external,
      });
    }
  });
  process.send!({ port: ep.local.port });
} else {
  const child = fork(new URL(import.meta.url).pathname, ["server"], { execArgv: ["--import", "tsx", "--expose-gc"] });
  type Reply = { port: number; rss: number; n: number; heap: number };
  const next = () => new Promise<Reply>((r) => child.once("message", (m) => r(m as Reply)));
  const { port } = await next();
  const N = 500;
  const eps = await Promise.all(Array.from({ length: N }, bind));
  child.send("mem");
  const m0 = await next();
  const conns = [];
  for (let i = 0; i < N; i += 16) {
    conns.push(
      ...await Promise.all(
        eps.slice(i, i + 16).map(async (e) => {
          const c = e.connect({ host: HOST, port });
          await c.established;
          return c;
        }),
      ),
    );
  }
  await new Promise((r) => setTimeout(r, 500));
  child.send("mem");
  const m1 = await next();
  console.log(
    `bare QUIC: ${m1.n - m0.n} conns, server RSS Δ/conn ${
      ((m1.rss - m0.rss) / (m1.n - m0.n) / 1024).toFixed(1)
    } KiB, JS heap+external Δ/conn ${((m1.heap - m0.heap) / (m1.n - m0.n) / 1024).toFixed(1)} KiB`,
  );
  child.kill();
  process.exit(0);
}
