/**
 * Diagnostic (not part of `npm run bench`): connect + Atlas handshake A/B between two checkouts,
 * in one process so machine noise hits both alike. Each build gets a listening node and a client
 * node (its own src/, via its own bench/common.ts); iterations alternate between the builds
 * (order swapped each round) and each closes its session before the next starts.
 *   node --import tsx bench/tools/ab-connect.ts <dir A> <dir B> [iterations, default 200]
 * e.g. a baseline exported with `git archive <commit> | tar -x -C /tmp/base` (node_modules linked).
 */
import { rm } from "node:fs/promises";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";

const [dirA, dirB] = [process.argv[2], process.argv[3]];
if (!dirA || !dirB) throw new Error("usage: ab-connect.ts <dir A> <dir B> [iterations]");
const R = Number(process.argv[4] ?? 200);
type Common = typeof import("../common.ts");
const load = async (d: string) => (await import(pathToFileURL(resolve(d, "bench/common.ts")).href)) as Common;
const builds = await Promise.all([dirA, dirB].map(async (dir) => {
  const c = await load(dir);
  const srv = await c.startNode("ab-server", true);
  const cli = await c.startNode("ab-client", false);
  return { dir, c, srv, cli, lat: [] as number[] };
}));
for (let i = 0; i < R + 10; i++) {
  for (const b of i % 2 ? builds : [...builds].reverse()) {
    const addr = { host: b.c.HOST, port: b.srv.node.endpoint.local.port };
    const t0 = performance.now();
    const s = await b.cli.node.connectTo(addr);
    const t1 = performance.now();
    s.close("ab");
    await s.done;
    if (i >= 10) b.lat.push(t1 - t0);
  }
}
for (const b of builds) {
  console.log(
    `${b.dir}: connect + handshake median ${b.c.median(b.lat).toFixed(3)} ms, p90 ${
      b.c.percentile(b.lat, 90).toFixed(3)
    } ms (${b.lat.length})`,
  );
}
for (const b of builds) {
  for (const n of [b.srv, b.cli]) {
    await n.node.close();
    await n.store.close();
    await rm(n.dir, { recursive: true, force: true });
  }
}
