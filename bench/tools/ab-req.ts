/**
 * Diagnostic (not part of `npm run bench`): request cost A/B between two checkouts, in one
 * process (client and server nodes of both builds on this one loop, so the figure is the CPU
 * cost of a request on both sides, and machine noise hits both builds alike). Per build and
 * round: 1 KiB Message → MessageAck, sequential and 8 in flight, on one session; rounds alternate
 * the builds (order swapped each round). Also prints the CPU time per request (client and server
 * together, this process's user + system time) of the 8-in-flight loops: steadier than the rates
 * on a machine whose idle cores wake late.
 *   node --import tsx bench/tools/ab-req.ts <dir A> <dir B> [rounds=3] [requests=3000]
 */
import { rm } from "node:fs/promises";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";

const [dirA, dirB] = [process.argv[2], process.argv[3]];
if (!dirA || !dirB) throw new Error("usage: ab-req.ts <dir A> <dir B> [rounds] [requests]");
const ROUNDS = Number(process.argv[4] ?? 3);
const REQS = Number(process.argv[5] ?? 3000);

type Common = typeof import("../common.ts");
type Transport = typeof import("../phases/transport.ts");
const imp = <T>(d: string, f: string) => import(pathToFileURL(resolve(d, f)).href) as Promise<T>;

const builds = await Promise.all([dirA, dirB].map(async (dir) => {
  const c = await imp<Common>(dir, "bench/common.ts");
  const t = await imp<Transport>(dir, "bench/phases/transport.ts");
  const srv = await c.startNode("ab-req-server", true);
  srv.node.handle(
    "Message",
    (_s, req) =>
      Promise.resolve({ type: "MessageAck", msg_id: req.type === "Message" ? req.id : undefined, status: "received" }),
  );
  const cli = await c.startNode("ab-req-client", false);
  const session = await cli.node.connectTo({ host: c.HOST, port: srv.node.endpoint.local.port });
  return { dir, c, t, srv, cli, session, seq: [] as number[], par: [] as number[], cpu: [] as number[] };
}));

for (let r = 0; r < ROUNDS; r++) {
  for (const b of r % 2 ? [...builds].reverse() : builds) {
    const one = async () => {
      const res = await b.session.request(b.t.message(b.cli, b.srv.node.nodeId), 10_000);
      if (res.type !== "MessageAck") throw new Error(`unexpected ${res.type}`);
    };
    await b.c.loop(200, 1, 10_000, one);
    const s = await b.c.loop(REQS, 1, 30_000, one);
    const c0 = process.cpuUsage();
    const p = await b.c.loop(REQS, 8, 30_000, one);
    const c = process.cpuUsage(c0);
    b.cpu.push((c.user + c.system) / p.n);
    b.seq.push(s.n / (s.ms / 1000));
    b.par.push(p.n / (p.ms / 1000));
  }
}
for (const b of builds) {
  const f = (xs: number[]) => `${xs.map((x) => x.toFixed(0)).join(", ")} (median ${b.c.median(xs).toFixed(0)})`;
  console.log(`${b.dir}: sequential ${f(b.seq)}/s; 8 in flight ${f(b.par)}/s`);
  const g = (xs: number[]) => `${xs.map((x) => x.toFixed(1)).join(", ")} (median ${b.c.median(xs).toFixed(1)})`;
  console.log(`${b.dir}: CPU per request, 8 in flight, both sides: ${g(b.cpu)} µs`);
}
for (const b of builds) {
  b.session.close("ab");
  for (const n of [b.cli, b.srv]) {
    await n.node.close();
    await n.store.close();
    await rm(n.dir, { recursive: true, force: true });
  }
}
