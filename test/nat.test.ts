/**
 * NAT and relay (docs/protocol.md#dialing, docs/protocol.md#stun, docs/protocol.md#relay): real daemons in Linux network namespaces behind nftables NAT
 * routers (test/helpers/netns.ts) — STUN through NAT, direct dials that cannot cross two NATs, and
 * the relay that connects them anyway while seeing only ciphertext (packet capture in the relay's
 * namespace, test/helpers/pcap.ts). Root only; skipped with the reason otherwise.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { cleanupHomes, initHome, tmpHome } from "./helpers/cli.ts";
import {
  AGENT_A,
  AGENT_B,
  AGENT_P,
  createNet,
  killAllInNs,
  NAT_A_WAN,
  NAT_B_WAN,
  type Net,
  netnsUnavailable,
  type NsNode,
  PUB_BOOT1,
  PUB_BOOT2,
  PUB_RELAY,
  runAtlasIn,
  type RunResult,
  startInNs,
} from "./helpers/netns.ts";
import { killCaptures, startCapture, udpPackets } from "./helpers/pcap.ts";
import { waitFor } from "./helpers/wait.ts";

const skip = netnsUnavailable();
const AGENT_PORT = 4433; // fixed inside each agent namespace, so a restart reuses the same local socket address
const BOOT_PORT = 3478;
const RELAY_PORT = 4433;
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
/** How outputs abbreviate a node ID (README.md#commands): `atlas_` and 12 hex digits, then `…`. */
const short = (id: string) => id.slice(0, 18) + "…";

let net: Net | undefined;
const stops: (() => Promise<unknown>)[] = [];
after(async () => {
  try {
    for (const s of stops.splice(0).reverse()) await s().catch(() => {});
    killAllInNs();
    killCaptures();
  } finally {
    net?.destroy();
    await cleanupHomes();
  }
});

async function config(
  home: string,
  stun: string[],
  o: { bootstrap?: string[]; relays?: string[]; dialTimeout?: number; registerInterval?: number } = {},
): Promise<void> {
  const network = o.bootstrap || o.relays
    ? `[network]\nbootstrap = ${JSON.stringify(o.bootstrap ?? [])}\nrelays = ${JSON.stringify(o.relays ?? [])}\n\n`
    : "";
  const bootstrap = o.registerInterval ? `[bootstrap]\nregister_interval = ${o.registerInterval}\n\n` : "";
  await writeFile(
    join(home, "state", "config.toml"),
    `[stun]\nservers = ${JSON.stringify(stun)}\ntimeout = 3\n\n${network}${bootstrap}[transport]\ndial_timeout = ${
      o.dialTimeout ?? 2
    }\n`,
  );
}

type Status = {
  public_address: string | null;
  public_address_source: string;
  sessions: { node_id: string; direction: string; path: string; relay: string | null }[];
  relays?: { relay: string; node_id: string | null; registered: boolean; last_error: string | null }[];
  relay_server?: { registered: number; pipes: number; forwarded_packets: number; forwarded_bytes: number } | null;
};
async function status(ns: string, home: string): Promise<Status> {
  const r = await runAtlasIn(ns, home, ["status", "--json"], 10_000);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}
async function waitStun(ns: string, home: string): Promise<Status> {
  let last: Status | undefined;
  return await waitFor("a STUN answer", async () => {
    last = await status(ns, home);
    return last.public_address_source.startsWith("stun") && last;
  }, { intervalMs: 150, lastSeen: () => last });
}

const show = (r: RunResult) => `exit ${r.code} after ${r.ms} ms\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;

describe("NAT in network namespaces", { skip: skip ?? false, timeout: 240_000 }, () => {
  let boot1: NsNode, boot2: NsNode, relay: NsNode, relayHome: string;
  const agent: Record<"a" | "b" | "p", { home: string; ns: string; node?: NsNode; pub?: Status }> = {} as never;
  /** `atlas <args>` in agent k's namespace and home (through its daemon when one runs). */
  const atlas = (k: "a" | "b" | "p", args: string[], ms = 20_000) => runAtlasIn(agent[k].ns, agent[k].home, args, ms);

  async function startAgent(
    k: "a" | "b" | "p",
    host: string,
    stun: string[],
    o: Parameters<typeof config>[2] = {},
  ): Promise<NsNode> {
    await config(agent[k].home, stun, o);
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
    // The relay has a namespace of its own on the public segment: a capture there sees only its traffic.
    relayHome = (await initHome("relay")).home;
    relay = await startInNs(net.ns.r, relayHome, PUB_RELAY, RELAY_PORT, ["relay"]);
    stops.push(() => relay.stop());
    for (const [k, ns] of [["a", net.ns.a], ["b", net.ns.b], ["p", net.ns.p]] as const) {
      agent[k] = { home: (await initHome(`agent-${k}`)).home, ns };
    }
  });

  test("STUN reports each router's public address, not the LAN address", { timeout: 60_000 }, async () => {
    const t0 = Date.now();
    await Promise.all([
      startAgent("a", AGENT_A, [boot1.address]),
      startAgent("b", AGENT_B, [boot1.address]),
      startAgent("p", AGENT_P, [boot1.address]),
    ]);
    assert.equal(agent.a.node!.address, `${AGENT_A}:${AGENT_PORT}`);
    const [sa, sb, sp] = await Promise.all([
      waitStun(agent.a.ns, agent.a.home),
      waitStun(agent.b.ns, agent.b.home),
      waitStun(agent.p.ns, agent.p.home),
    ]);
    Object.assign(agent.a, { pub: sa }), Object.assign(agent.b, { pub: sb }), Object.assign(agent.p, { pub: sp });
    assert.equal(sa.public_address_source, `stun ${boot1.address}`);
    assert.equal(sb.public_address_source, `stun ${boot1.address}`);
    // Port-preserving masquerade keeps 4433; the symmetric NAT picks some port on its WAN address.
    assert.equal(sa.public_address, `${NAT_A_WAN}:${AGENT_PORT}`);
    assert.match(sb.public_address!, new RegExp(`^${NAT_B_WAN.replace(/\./g, "\\.")}:\\d+$`));
    assert.equal(sp.public_address, `${AGENT_P}:${AGENT_PORT}`);
    console.log(
      `# STUN through NAT: a=${sa.public_address} b=${sb.public_address} p=${sp.public_address} (${
        Date.now() - t0
      } ms)`,
    );
  });

  test(
    "a direct dial between the two NATed agents fails: exit 3 within the dial timeout",
    { timeout: 60_000 },
    async () => {
      assert.ok(agent.b.pub && agent.a.pub, "needs the STUN test");
      const ab = await runAtlasIn(agent.a.ns, agent.a.home, ["net", "ping", agent.b.pub.public_address!], 20_000);
      assert.equal(ab.code, 3, `a→b: ${ab.stdout}${ab.stderr}`);
      const ba = await runAtlasIn(agent.b.ns, agent.b.home, ["net", "ping", agent.a.pub.public_address!], 20_000);
      assert.equal(ba.code, 3, `b→a: ${ba.stdout}${ba.stderr}`);
      // dial_timeout = 2 s, plus CLI start-up.
      assert.ok(ab.ms < 8000 && ba.ms < 8000, `took ${ab.ms} / ${ba.ms} ms`);
      console.log(`# unreachable through NAT: a→b ${ab.ms} ms, b→a ${ba.ms} ms: ${ab.stderr.trim()}`);
    },
  );

  test("an agent with a public address is reached directly from behind either NAT", { timeout: 60_000 }, async () => {
    assert.ok(agent.p.node, "needs the STUN test");
    for (const k of ["a", "b"] as const) {
      const r = await runAtlasIn(agent[k].ns, agent[k].home, [
        "net",
        "ping",
        `${AGENT_P}:${AGENT_PORT}`,
        "--count",
        "2",
      ], 20_000);
      assert.equal(r.code, 0, `${k}→p: ${r.stdout}${r.stderr}`);
      assert.match(r.stdout, /^Path : direct$/m);
      assert.match(r.stdout, /2 sent, 2 received$/m);
      console.log(`# ${k}→p direct: ${r.stdout.trimEnd().split("\n").at(-1)} (${r.ms} ms)`);
    }
  });

  test(
    "symmetric NAT: a new public port per destination; masquerade persistent keeps its port",
    { timeout: 60_000 },
    async () => {
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
      console.log(
        `# symmetric NAT b: ${agent.b.pub.public_address} via ${boot1.address}, ${sb2.public_address} via ${boot2.address}; a stays ${sa2.public_address}`,
      );
    },
  );

  // ---- Relay (docs/protocol.md#dialing, docs/protocol.md#relay) --------------------------------------------------------------------
  // A (port-preserving NAT) and B (symmetric NAT) register with the relay, learn each other from
  // the bootstrap node, cannot reach each other directly, and talk through the relay anyway.

  type Discovered = { node_id: string; address: string; public_address: string | null; relays: string[] };
  type Delivery = { msg_id: string; status: string; path: string | null; detail: string | null };
  const id = (k: "a" | "b") => agent[k].node!.nodeId;
  /** How agents name the relay: `atlas_<relay id>@198.18.0.3:4433`. */
  const relayLabel = () => `${relay.nodeId}@${relay.address}`;
  /** `Path : relay (atlas_xxxxxxxxxxxx…@198.18.0.3:4433)`: this relay, exactly. */
  const relayPath = () => new RegExp(`^Path : relay \\(${esc(short(relay.nodeId))}@${esc(relay.address)}\\)$`, "m");
  const ANY_RELAY_PATH = /^Path : relay \(atlas_[0-9a-f]{12}…@198\.18\.0\.\d+:\d+\)$/m;
  const relayStatus = async () => (await status(net!.ns.r, relayHome)).relay_server!;

  /** The sessions k's daemon holds with the other agent. */
  async function sessionsWith(k: "a" | "b", other: "a" | "b"): Promise<Status["sessions"]> {
    return (await status(agent[k].ns, agent[k].home)).sessions.filter((s) => s.node_id === id(other));
  }

  /** `net disconnect` from k, then wait until neither daemon holds a session with the other. */
  async function disconnect(k: "a" | "b", other: "a" | "b"): Promise<void> {
    const r = await atlas(k, ["net", "disconnect", id(other)]);
    assert.equal(r.code, 0, `${k} net disconnect ${other}: ${show(r)}`);
    let last: unknown;
    await waitFor(`the ${k}–${other} sessions to close after net disconnect`, async () => {
      last = [await sessionsWith(k, other), await sessionsWith(other, k)];
      return (last as unknown[][]).every((x) => x.length === 0) ? true : undefined;
    }, { timeoutMs: 10_000, intervalMs: 200, lastSeen: () => last });
  }

  test("both NATed agents register with the relay on the public segment", { timeout: 60_000 }, async () => {
    assert.ok(agent.a.node && agent.b.node, "needs the STUN test");
    assert.equal(relay.address, `${PUB_RELAY}:${RELAY_PORT}`);
    const t0 = Date.now();
    for (const k of ["a", "b"] as const) {
      assert.equal(await agent[k].node!.stop(), 0, `agent ${k} did not stop cleanly`);
    }
    // dial_timeout = 1 s: the direct candidates give up quickly, then the relay is tried. The
    // default register_interval (300 s) stays: the record the bootstrap node holds must already be
    // the current one (public address, home relay) from the registrations made at start.
    const o = { bootstrap: [boot1.address], relays: [relay.address], dialTimeout: 1 };
    await Promise.all([startAgent("a", AGENT_A, [boot1.address], o), startAgent("b", AGENT_B, [boot1.address], o)]);
    for (const k of ["a", "b"] as const) {
      let last: Status | undefined;
      const st = await waitFor(`agent ${k} to register with the relay`, async () => {
        last = await status(agent[k].ns, agent[k].home);
        return last.relays?.[0]?.registered ? last : undefined;
      }, { timeoutMs: 15_000, intervalMs: 200, lastSeen: () => last?.relays });
      assert.equal(st.relays!.length, 1, JSON.stringify(st.relays));
      assert.equal(st.relays![0]!.relay, relay.address);
      assert.equal(st.relays![0]!.node_id, relay.nodeId, "the relay's node ID as learnt in the handshake");
    }
    let rs: Awaited<ReturnType<typeof relayStatus>> | undefined;
    await waitFor(
      "the relay to count both registrations",
      async () => ((rs = await relayStatus()).registered === 2 ? true : undefined),
      {
        timeoutMs: 10_000,
        intervalMs: 200,
        lastSeen: () => rs,
      },
    );
    console.log(`# relay ${relayLabel()}: a and b registered (${Date.now() - t0} ms)`);
  });

  test(
    "the NATed agents learn each other and their home relays from the bootstrap node, and a direct dial still fails",
    {
      timeout: 60_000,
    },
    async () => {
      assert.ok(agent.a.node && agent.b.node, "needs the relay registration test");
      for (const [k, other, wan] of [["a", "b", NAT_B_WAN], ["b", "a", NAT_A_WAN]] as const) {
        let last: unknown;
        const peer = await waitFor(`${k}'s net discover to return ${other} with its home relay`, async () => {
          const r = await atlas(k, ["net", "discover", "--json"]);
          assert.equal(r.code, 0, `${k} net discover: ${show(r)}`);
          last = JSON.parse(r.stdout).peers as Discovered[];
          const p = (last as Discovered[]).find((x) => x.node_id === id(other));
          // Its current record: the NAT router's public address and the home relay.
          return p?.relays.includes(relayLabel()) && p.public_address?.startsWith(`${wan}:`) ? p : undefined;
        }, { timeoutMs: 15_000, intervalMs: 200, lastSeen: () => last });
        assert.match(
          peer.public_address!,
          new RegExp(`^${esc(wan)}:\\d+$`),
          `${other}'s public address: ${JSON.stringify(peer)}`,
        );
        // A direct dial at that address cannot cross the two NATs (an address target never falls back to a relay).
        const d = await atlas(k, ["net", "ping", peer.public_address!]);
        assert.equal(d.code, 3, `${k}→${other} direct at ${peer.public_address}: ${show(d)}`);
        console.log(
          `# ${k} discovered ${other}: address ${peer.address}, public ${peer.public_address}, relays ${
            peer.relays.join(",")
          }; direct ping exit 3 (${d.ms} ms)`,
        );
      }
    },
  );

  test("an agent behind masquerade and one behind a symmetric NAT ping each other by node ID through the relay", {
    timeout: 60_000,
  }, async () => {
    assert.ok(agent.a.node && agent.b.node, "needs the discovery test");
    // A dials: B's direct candidates time out (1 s), then B's home relay pairs them.
    const ab = await atlas("a", ["net", "ping", id("b"), "--count", "2", "--interval", "200"]);
    assert.equal(ab.code, 0, `a→b by node ID: ${show(ab)}`);
    assert.match(ab.stdout, ANY_RELAY_PATH, `a→b should go through a relay: ${ab.stdout}`);
    assert.match(ab.stdout, relayPath(), `a→b should go through ${relayLabel()}: ${ab.stdout}`);
    assert.match(ab.stdout, /2 sent, 2 received$/m);
    const inB = await sessionsWith("b", "a");
    assert.ok(
      inB.some((s) => s.direction === "inbound" && s.path === "relay" && s.relay === relayLabel()),
      `b should hold an inbound relayed session from a: ${JSON.stringify(inB)}`,
    );
    console.log(
      `# a→b via relay: ${ab.stdout.trimEnd().split("\n").at(-1)} (${ab.ms} ms including the direct attempts)`,
    );

    // Close it, so that B really dials A (B is the dialler behind the symmetric NAT this time).
    await disconnect("a", "b");
    const ba = await atlas("b", ["net", "ping", id("a"), "--count", "2", "--interval", "200"]);
    assert.equal(ba.code, 0, `b→a by node ID: ${show(ba)}`);
    assert.match(ba.stdout, ANY_RELAY_PATH, `b→a should go through a relay: ${ba.stdout}`);
    assert.match(ba.stdout, relayPath(), `b→a should go through ${relayLabel()}: ${ba.stdout}`);
    assert.match(ba.stdout, /2 sent, 2 received$/m);
    const outB = await sessionsWith("b", "a");
    assert.ok(
      outB.some((s) => s.direction === "outbound" && s.path === "relay" && s.relay === relayLabel()),
      `b should hold an outbound relayed session to a: ${JSON.stringify(outB)}`,
    );
    // --json names the path and the relay as fields.
    const j = await atlas("b", ["net", "ping", id("a"), "--json"]);
    assert.equal(j.code, 0, show(j));
    const pj = JSON.parse(j.stdout);
    assert.equal(pj.path, "relay");
    assert.equal(pj.relay, relayLabel());
    assert.equal(pj.received, 1);
    console.log(
      `# b→a via relay: ${ba.stdout.trimEnd().split("\n").at(-1)} (${ba.ms} ms including the direct attempts)`,
    );
  });

  test("a message arrives intact through the relay, which never sees it in clear", {
    timeout: 60_000,
  }, async () => {
    assert.ok(agent.a.node && agent.b.node, "needs the relay ping test");
    // A fresh relayed session for the message (handshake included in the capture).
    await disconnect("b", "a");
    const token = randomBytes(16).toString("hex");
    const marker = `atlas-relay-secret-${token}`;
    const body = JSON.stringify({
      task: "relay-check",
      secret: marker,
      note: "this text must never appear in clear at the relay",
    });
    const before = await relayStatus();
    const cap = await startCapture(net!.ns.r, "eth0", join(await tmpHome("atlas-pcap-"), "relay.pcap"), ["udp"]);
    let msgId: string, delivery: Delivery;
    try {
      const q = await atlas("a", ["net", "send", id("b"), body]);
      assert.equal(q.code, 0, `a net send: ${show(q)}`);
      msgId = /^Queued\s*: (msg_\S+)$/m.exec(q.stdout)?.[1] ?? assert.fail(`a net send did not queue: ${q.stdout}`);
      let inbox: string[] = [];
      const line = await waitFor(`${msgId} in b's inbox`, async () => {
        const r = await atlas("b", ["net", "inbox", "--json"]);
        assert.equal(r.code, 0, `b net inbox: ${show(r)}`);
        inbox = r.stdout.split("\n").filter(Boolean);
        return inbox.find((l) => JSON.parse(l).id === msgId);
      }, { timeoutMs: 20_000, intervalMs: 200, lastSeen: () => inbox });
      const got = JSON.parse(line);
      assert.equal(got.from, id("a"));
      assert.ok(line.includes(`"body":${body},`), `b's inbox must hold exactly the body sent: ${line}`);
      let deliveries: Delivery[] = [];
      delivery = await waitFor(`a's outbox to record ${msgId} as delivered`, async () => {
        const r = await atlas("a", ["net", "outbox", "--json"]);
        assert.equal(r.code, 0, `a net outbox: ${show(r)}`);
        deliveries = JSON.parse(r.stdout).deliveries;
        return deliveries.find((d) => d.msg_id === msgId && d.status === "delivered");
      }, { timeoutMs: 10_000, intervalMs: 200, lastSeen: () => deliveries });
    } catch (e) {
      await cap.stop().catch(() => {});
      throw e;
    }
    const captured = await cap.stop();
    const after = await relayStatus();
    assert.equal(delivery.path, "relay", `delivery should go through the relay: ${JSON.stringify(delivery)}`);
    assert.equal(delivery.detail, `via ${relayLabel()}`);

    // The capture holds the relay's traffic with both NAT routers…
    assert.equal(captured.droppedByKernel, 0, `tcpdump lost packets: ${captured.summary}`);
    const atRelay = udpPackets(captured.bytes).filter((p) =>
      (p.src === PUB_RELAY && p.srcPort === RELAY_PORT) || (p.dst === PUB_RELAY && p.dstPort === RELAY_PORT)
    );
    const count = (src: string, dst: string) => atRelay.filter((p) => p.src === src && p.dst === dst).length;
    const bytes = atRelay.reduce((n, p) => n + p.payload, 0);
    const flows = {
      a_to_relay: count(NAT_A_WAN, PUB_RELAY),
      relay_to_b: count(PUB_RELAY, NAT_B_WAN),
      b_to_relay: count(NAT_B_WAN, PUB_RELAY),
      relay_to_a: count(PUB_RELAY, NAT_A_WAN),
    };
    assert.ok(
      atRelay.length >= 20,
      `expected many UDP packets at the relay port, got ${atRelay.length}: ${
        JSON.stringify(flows)
      } (${captured.bytes.length}-byte capture; ${captured.summary})`,
    );
    for (const [flow, n] of Object.entries(flows)) {
      assert.ok(n >= 3, `too few packets ${flow}: ${JSON.stringify(flows)}`);
    }
    // The end-to-end connection's handshake crossed the relay both ways: its Initial packets are
    // padded to ≥ 1200 bytes (RFC 9000 §14.1) and ride in DATAGRAMs of the agent–relay links, whose
    // own handshakes are long over (the announces keep them open).
    const big = (src: string, dst: string) =>
      atRelay.filter((p) => p.src === src && p.dst === dst && p.payload >= 1200).length;
    const bigFlows = {
      a_to_relay: big(NAT_A_WAN, PUB_RELAY),
      relay_to_b: big(PUB_RELAY, NAT_B_WAN),
      b_to_relay: big(NAT_B_WAN, PUB_RELAY),
      relay_to_a: big(PUB_RELAY, NAT_A_WAN),
    };
    for (const [flow, n] of Object.entries(bigFlows)) {
      assert.ok(n >= 1, `no ≥1200-byte packet ${flow} (the relayed handshake): ${JSON.stringify(bigFlows)}`);
    }
    assert.ok(
      bytes > 2 * Buffer.byteLength(body),
      `relay UDP payload ${bytes} bytes should exceed twice the ${
        Buffer.byteLength(body)
      }-byte body (it went in and out)`,
    );
    assert.ok(
      after.forwarded_packets > before.forwarded_packets,
      `the relay forwarded nothing: ${JSON.stringify({ before, after })}`,
    );
    // …and never the message in clear: neither the marker nor its random part, anywhere in the file.
    assert.equal(captured.bytes.indexOf(marker), -1, "the marker appears in clear in the relay's capture");
    assert.equal(
      captured.bytes.indexOf(token),
      -1,
      "the marker's random token appears in clear in the relay's capture",
    );
    console.log(
      `# relay capture: ${atRelay.length} UDP packets, ${bytes} payload bytes at ${relay.address} ${
        JSON.stringify(flows)
      }; relay forwarded ${after.forwarded_packets - before.forwarded_packets} datagrams; marker not in clear`,
    );
  });
});

if (skip) console.log(`# NAT tests skipped: ${skip}`);
