/**
 * NAT (SPEC §10, groundwork for §11): real daemons in Linux network namespaces behind nftables NAT
 * routers (test/helpers/netns.ts). Root only; skipped with the reason otherwise.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { cleanupHomes, initHome } from "./helpers/cli.ts";
import { AGENT_A, AGENT_B, AGENT_P, createNet, killAllInNs, NAT_A_WAN, NAT_B_WAN, netnsUnavailable, PUB_BOOT1, PUB_BOOT2, runAtlasIn, startInNs, type Net, type NsNode } from "./helpers/netns.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const skip = netnsUnavailable();
const AGENT_PORT = 4433; // fixed inside each agent namespace, so a restart reuses the same local socket address
const BOOT_PORT = 3478;

let net: Net | undefined;
const stops: (() => Promise<unknown>)[] = [];
after(async () => {
  try {
    for (const s of stops.splice(0).reverse()) await s().catch(() => {});
    killAllInNs();
  } finally {
    net?.destroy();
    await cleanupHomes();
  }
});

async function config(home: string, stun: string[]): Promise<void> {
  await writeFile(join(home, "state", "config.toml"), `[stun]\nservers = ${JSON.stringify(stun)}\ntimeout = 3\n\n[transport]\ndial_timeout = 2\n`);
}

type Status = { public_address: string | null; public_address_source: string };
async function status(ns: string, home: string): Promise<Status> {
  const r = await runAtlasIn(ns, home, ["status", "--json"], 10_000);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}
async function waitStun(ns: string, home: string, ms = 10_000): Promise<Status> {
  const end = Date.now() + ms;
  let last = await status(ns, home);
  while (!last.public_address_source.startsWith("stun") && Date.now() < end) {
    await sleep(150);
    last = await status(ns, home);
  }
  assert.ok(last.public_address_source.startsWith("stun"), `no STUN answer: ${JSON.stringify(last)}`);
  return last;
}

describe("NAT in network namespaces", { skip: skip ?? false, timeout: 240_000 }, () => {
  let boot1: NsNode, boot2: NsNode;
  const agent: Record<"a" | "b" | "p", { home: string; ns: string; node?: NsNode; pub?: Status }> = {} as never;

  async function startAgent(k: "a" | "b" | "p", host: string, stun: string[]): Promise<NsNode> {
    await config(agent[k].home, stun);
    const n = await startInNs(agent[k].ns, agent[k].home, host, AGENT_PORT);
    stops.push(() => n.stop());
    agent[k].node = n;
    return n;
  }

  before(async () => {
    net = createNet();
    const b1 = await initHome("boot1");
    const b2 = await initHome("boot2");
    // initHome wrote `[stun] servers = []`: bootstrap nodes ask nobody.
    boot1 = await startInNs(net.ns.pub, b1.home, PUB_BOOT1, BOOT_PORT, ["bootstrap"]);
    stops.push(() => boot1.stop());
    boot2 = await startInNs(net.ns.pub, b2.home, PUB_BOOT2, BOOT_PORT, ["bootstrap"]);
    stops.push(() => boot2.stop());
    for (const [k, ns] of [["a", net.ns.a], ["b", net.ns.b], ["p", net.ns.p]] as const) agent[k] = { home: (await initHome(`agent-${k}`)).home, ns };
  });

  test("STUN reports each router's public address, not the LAN address", { timeout: 60_000 }, async () => {
    const t0 = Date.now();
    await Promise.all([startAgent("a", AGENT_A, [boot1.address]), startAgent("b", AGENT_B, [boot1.address]), startAgent("p", AGENT_P, [boot1.address])]);
    assert.equal(agent.a.node!.address, `${AGENT_A}:${AGENT_PORT}`);
    const [sa, sb, sp] = await Promise.all([waitStun(agent.a.ns, agent.a.home), waitStun(agent.b.ns, agent.b.home), waitStun(agent.p.ns, agent.p.home)]);
    Object.assign(agent.a, { pub: sa }), Object.assign(agent.b, { pub: sb }), Object.assign(agent.p, { pub: sp });
    assert.equal(sa.public_address_source, `stun ${boot1.address}`);
    assert.equal(sb.public_address_source, `stun ${boot1.address}`);
    // Port-preserving masquerade keeps 4433; the symmetric NAT picks some port on its WAN address.
    assert.equal(sa.public_address, `${NAT_A_WAN}:${AGENT_PORT}`);
    assert.match(sb.public_address!, new RegExp(`^${NAT_B_WAN.replace(/\./g, "\\.")}:\\d+$`));
    assert.equal(sp.public_address, `${AGENT_P}:${AGENT_PORT}`);
    console.log(`# STUN through NAT: a=${sa.public_address} b=${sb.public_address} p=${sp.public_address} (${Date.now() - t0} ms)`);
  });

  test("a direct dial between the two NATed agents fails: exit 3 within the dial timeout", { timeout: 60_000 }, async () => {
    assert.ok(agent.b.pub && agent.a.pub, "needs the STUN test");
    const ab = await runAtlasIn(agent.a.ns, agent.a.home, ["net", "ping", agent.b.pub.public_address!], 20_000);
    assert.equal(ab.code, 3, `a→b: ${ab.stdout}${ab.stderr}`);
    const ba = await runAtlasIn(agent.b.ns, agent.b.home, ["net", "ping", agent.a.pub.public_address!], 20_000);
    assert.equal(ba.code, 3, `b→a: ${ba.stdout}${ba.stderr}`);
    // dial_timeout = 2 s, plus CLI start-up.
    assert.ok(ab.ms < 8000 && ba.ms < 8000, `took ${ab.ms} / ${ba.ms} ms`);
    console.log(`# unreachable through NAT: a→b ${ab.ms} ms, b→a ${ba.ms} ms: ${ab.stderr.trim()}`);
  });

  test("an agent with a public address is reached directly from behind either NAT", { timeout: 60_000 }, async () => {
    assert.ok(agent.p.node, "needs the STUN test");
    for (const k of ["a", "b"] as const) {
      const r = await runAtlasIn(agent[k].ns, agent[k].home, ["net", "ping", `${AGENT_P}:${AGENT_PORT}`, "--count", "2"], 20_000);
      assert.equal(r.code, 0, `${k}→p: ${r.stdout}${r.stderr}`);
      assert.match(r.stdout, /^Path : direct$/m);
      assert.match(r.stdout, /2 sent, 2 received$/m);
      console.log(`# ${k}→p direct: ${r.stdout.trimEnd().split("\n").at(-1)} (${r.ms} ms)`);
    }
  });

  test("symmetric NAT: a new public port per destination; masquerade persistent keeps its port", { timeout: 60_000 }, async () => {
    assert.ok(agent.a.pub && agent.b.pub, "needs the STUN test");
    // Same local socket (fixed port 4433), now asking the second STUN server. The first mapping
    // (to boot1) stays in conntrack; the new destination gets its own mapping.
    for (const k of ["a", "b"] as const) {
      assert.equal(await agent[k].node!.stop(), 0);
      const n = await startAgent(k, k === "a" ? AGENT_A : AGENT_B, [boot2.address]);
      assert.equal(n.port, AGENT_PORT);
    }
    const [sa2, sb2] = await Promise.all([waitStun(agent.a.ns, agent.a.home), waitStun(agent.b.ns, agent.b.home)]);
    assert.equal(sa2.public_address_source, `stun ${boot2.address}`);
    assert.equal(sb2.public_address_source, `stun ${boot2.address}`);
    assert.equal(sa2.public_address, agent.a.pub.public_address, "masquerade persistent must keep the mapping");
    const [hostB1, portB1] = agent.b.pub.public_address!.split(":");
    const [hostB2, portB2] = sb2.public_address!.split(":");
    assert.equal(hostB2, hostB1);
    assert.notEqual(portB2, portB1, "symmetric NAT must map a new destination to a new port");
    console.log(`# symmetric NAT b: ${agent.b.pub.public_address} via ${boot1.address}, ${sb2.public_address} via ${boot2.address}; a stays ${sa2.public_address}`);
  });
});

if (skip) console.log(`# NAT tests skipped: ${skip}`);
