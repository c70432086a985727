/**
 * Diagnostic (not part of `npm run bench`): where the time of `AtlasNode.connectTo` goes.
 * Two nodes in this one process; times QUIC connect, the 4-message handshake alone, the store
 * writes of a session open alone, and the whole connectTo.
 *   node --import tsx bench/tools/probe-connect.ts
 */
import { rm } from "node:fs/promises";
import { initiateHandshake } from "../../src/handshake/handshake.ts";
import { HOST, median, startNode } from "../common.ts";

const srv = await startNode("probe-server", true);
const cli = await startNode("probe-client", false);
const addr = { host: HOST, port: srv.node.endpoint.local.port };
const R = 30;
const ms = (xs: number[]) => median(xs).toFixed(2) + " ms";

const quic: number[] = [];
const hs: number[] = [];
for (let i = 0; i < R; i++) {
  const t0 = performance.now();
  const c = cli.node.endpoint.connect(addr);
  await c.established;
  const t1 = performance.now();
  await initiateHandshake(c, cli.node.card, { timeoutMs: 10_000, maxDriftS: 300, trustFor: () => "unknown" });
  const t2 = performance.now();
  quic.push(t1 - t0);
  hs.push(t2 - t1);
  c.close(0, "probe");
  await c.closed;
}

// the store writes recordSession() does for one new session (peers.get, upsert, clearFailure, sessions.open)
const st: number[] = [];
const each: number[][] = [[], [], [], []];
for (let i = 0; i < R; i++) {
  const id = srv.node.nodeId;
  const now = Math.floor(Date.now() / 1000);
  const t0 = performance.now();
  await cli.store.peers.get(id);
  const t1 = performance.now();
  await cli.store.peers.upsert({
    node_id: id,
    public_key: srv.identity.publicKey,
    address: `${HOST}:1`,
    name: "x",
    skills: [],
    trust_level: "unknown",
    last_seen: now,
  }, now);
  const t2 = performance.now();
  await cli.store.peers.clearFailure(id);
  const t3 = performance.now();
  await cli.store.sessions.open({
    node_id: id,
    direction: "outbound",
    path: "direct",
    relay: null,
    remote_address: `${HOST}:1`,
    protocol_v: 1,
    trust_level: "unknown",
    connected_at: now,
  });
  const t4 = performance.now();
  st.push(t4 - t0);
  each[0]!.push(t1 - t0);
  each[1]!.push(t2 - t1);
  each[2]!.push(t3 - t2);
  each[3]!.push(t4 - t3);
}

const full: number[] = [];
for (let i = 0; i < R; i++) {
  const t0 = performance.now();
  const s = await cli.node.connectTo(addr);
  full.push(performance.now() - t0);
  s.close("probe");
  await s.done;
}

console.log(`QUIC established (Retry + TLS): ${ms(quic)}`);
console.log(`4-message handshake alone:      ${ms(hs)}`);
console.log(
  `store writes of one session:    ${ms(st)}  (get ${ms(each[0]!)}, upsert ${ms(each[1]!)}, clearFailure ${
    ms(each[2]!)
  }, sessions.open ${ms(each[3]!)})`,
);
console.log(`whole connectTo:                ${ms(full)}`);

await cli.node.close();
await srv.node.close();
await cli.store.close();
await srv.store.close();
await rm(cli.dir, { recursive: true, force: true });
await rm(srv.dir, { recursive: true, force: true });
