import { HOST, startNode } from "../common.ts";
const srv = await startNode("p-server", true);
const cli = await startNode("p-client", false);
const addr = { host: HOST, port: srv.node.endpoint.local.port };
const t0 = performance.now();
for (let i = 0; i < 800; i++) {
  const s = await cli.node.connectTo(addr);
  s.close("x");
  await new Promise((r) => setTimeout(r, 2));
}
console.log(((performance.now() - t0) / 800).toFixed(3), "ms per connect incl 2ms pause");
process.exit(0);
