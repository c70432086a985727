import { AtlasNode } from "./src/net/node.ts";
import { identityFromSeed } from "./src/identity/identity.ts";
import { generateSeed } from "./src/identity/keys.ts";
import { openStore } from "./src/store/index.ts";
import { defaultConfig } from "./src/config/defaults.ts";
import { mkdtempSync } from "node:fs";
const mk = async (listen: boolean) => AtlasNode.start({ config: defaultConfig(), identity: identityFromSeed(generateSeed()), profile: { name: "x", bio: "", skills: [] }, store: await openStore(mkdtempSync("/tmp/rtt-") + "/p.db"), listen, host: "127.0.0.1", port: 0 });
const a = await mk(true), b = await mk(false);
const s = await b.connectTo(a.endpoint.local);
const r: number[] = [];
for (let i = 0; i < 300; i++) { const t=(await s.ping(2000)).rttMs; r.push(t); if (t > 3) console.log("slow", i, t.toFixed(2)); }
r.sort((x, y) => x - y);
console.log("ping median", r[150]!.toFixed(3), "p99", r[297]!.toFixed(3), "max", r[299]!.toFixed(2));
await b.close(); await a.close(); process.exit(0);
