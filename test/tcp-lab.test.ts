/**
 * The TCP leg in the network-namespace lab (docs/protocol.md#the-tcp-leg; test/helpers/netns.ts):
 * two hosts whose routers drop every UDP packet (TCP allowed) — agent a behind natA, agent h
 * behind natH — and three agents with working UDP behind a symmetric NAT (b), a full cone (c) and a
 * port-restricted cone (e).
 * Real daemons, a relay and a bootstrap node on the public segment. The UDP-blocked agents fall
 * back to TLS on TCP, register and discover over it, ping and message every other agent both ways
 * through the relay, and the relay's traffic never holds a message in clear. Root only.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { spawnSync } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { cleanupHomes, initHome, tmpHome } from "./helpers/cli.ts";
import {
  AGENT_A,
  AGENT_B,
  AGENT_C,
  AGENT_E,
  AGENT_H,
  createNet,
  killAllInNs,
  type Net,
  netnsUnavailable,
  type NsNode,
  PUB_BOOT1,
  PUB_RELAY,
  runAtlasIn,
  type RunResult,
  startInNs,
} from "./helpers/netns.ts";
import { captureUnavailable, killCaptures, startCapture } from "./helpers/pcap.ts";
import { waitFor } from "./helpers/wait.ts";

const skip = netnsUnavailable() ?? captureUnavailable();
const PORT = 4433;
type K = "a" | "h" | "b" | "c" | "e";
const HOSTS: Record<K, string> = { a: AGENT_A, h: AGENT_H, b: AGENT_B, c: AGENT_C, e: AGENT_E };
const BLOCKED: K[] = ["a", "h"];
/** a, UDP-blocked, with each of the others: symmetric, full cone, port-restricted, UDP-blocked. */
const OTHERS: K[] = ["b", "c", "e", "h"];

/** Drop every UDP packet the router forwards, both ways: a network that allows only TCP. */
const NO_UDP = "table ip atlnoudp {\n  chain noudp { type filter hook forward priority -10; policy accept; " +
  "meta l4proto udp drop; }\n}\n";

let net: Net | undefined;
const nodes: NsNode[] = [];
after(async () => {
  try {
    for (const n of nodes.splice(0).reverse()) await n.stop().catch(() => {});
    killAllInNs();
    killCaptures();
  } finally {
    net?.destroy();
    await cleanupHomes();
  }
});

/** a→x for half the others and x→a for the rest, then the reverse: no pair dials both ways at once. */
function batchesBothWays(): [K, K][][] {
  const first = OTHERS.map((k, i): [K, K] => (i % 2 === 0 ? ["a", k] : [k, "a"]));
  return [first, first.map(([x, y]): [K, K] => [y, x])];
}

const show = (r: RunResult) => `exit ${r.code} after ${r.ms} ms\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;

type Status = {
  relays: { registered: boolean; leg: "udp" | "tcp" | null }[];
  relay_transport: { mode: string; udp: string; tcp_sessions: number };
};

describe("the relay over TLS on TCP in network namespaces", { skip: skip ?? false, timeout: 120_000 }, () => {
  let relay: NsNode, relayNs: string, relayHome: string;
  const agent = {} as Record<K, { home: string; ns: string; id: string }>;
  const atlas = (k: K, args: string[], ms = 20_000) => runAtlasIn(agent[k].ns, agent[k].home, args, ms);
  const status = async (k: K): Promise<Status> => {
    const r = await atlas(k, ["status", "--json"], 10_000);
    assert.equal(r.code, 0, show(r));
    return JSON.parse(r.stdout);
  };

  before(async () => {
    net = createNet();
    for (const router of [net.ns.natA, net.ns.natH]) {
      const r = spawnSync("ip", ["netns", "exec", router, "nft", "-f", "-"], { input: NO_UDP, encoding: "utf8" });
      assert.equal(r.status, 0, `nft in ${router}: ${r.stderr}`);
    }
    const bootHome = (await initHome("boot")).home;
    const boot = await startInNs(net.ns.pub, bootHome, PUB_BOOT1, 3478, ["bootstrap"]);
    nodes.push(boot);
    relayNs = net.ns.r;
    relayHome = (await initHome("relay")).home;
    relay = await startInNs(relayNs, relayHome, PUB_RELAY, PORT, ["relay"]);
    nodes.push(relay);
    const ns: Record<K, string> = { a: net.ns.a, h: net.ns.h, b: net.ns.b, c: net.ns.c, e: net.ns.e };
    await Promise.all((Object.keys(HOSTS) as K[]).map(async (k) => {
      const { home } = await initHome(`agent-${k}`);
      await writeFile(
        join(home, "state", "config.toml"),
        `[stun]\nservers = []\n\n[network]\nbootstrap = ["${boot.nodeId}@${boot.address}"]\nrelays = ["${relay.nodeId}@${relay.address}"]\n\n[transport]\ndial_timeout = 1\n`,
      );
      const n = await startInNs(ns[k], home, HOSTS[k], PORT);
      nodes.push(n);
      agent[k] = { home, ns: ns[k], id: n.nodeId };
    }));
  });

  test("UDP-blocked agents register with the relay over TCP, the others over UDP, and status says so", async () => {
    const t0 = Date.now();
    for (const k of Object.keys(HOSTS) as K[]) {
      let last: Status | undefined;
      const st = await waitFor(`${k} registered`, async () => {
        last = await status(k);
        return last.relays[0]?.registered && last;
      }, { timeoutMs: 20_000, intervalMs: 250, lastSeen: () => last });
      const tcp = BLOCKED.includes(k);
      assert.equal(st.relays[0]!.leg, tcp ? "tcp" : "udp", `${k}: ${JSON.stringify(st)}`);
      if (tcp) assert.equal(st.relay_transport.udp, "blocked");
    }
    const human = await atlas("a", ["status"]);
    assert.match(human.stdout, /^Relays\s*: .* registered over TCP/m, human.stdout);
    console.log(`# all five registered (${Date.now() - t0} ms); a and h over TCP`);
  });

  test("a UDP-blocked agent registers and discovers through the bootstrap node's TCP leg", async () => {
    let last = "";
    await waitFor("a discovers b, c, e and h", async () => {
      const r = await atlas("a", ["net", "discover", "--json"]);
      last = r.stdout + r.stderr;
      const ids = r.code === 0 ? JSON.parse(r.stdout).peers.map((p: { node_id: string }) => p.node_id) : [];
      return OTHERS.every((k) => ids.includes(agent[k].id));
    }, { timeoutMs: 20_000, intervalMs: 500, lastSeen: () => last });
  });

  test("net ping works both ways between a UDP-blocked agent and agents behind symmetric, full-cone and port-restricted NATs and another UDP-blocked host", async () => {
    // Two batches, so that no two agents dial each other at the same moment.
    const batches = batchesBothWays();
    for (const batch of batches) {
      await Promise.all(batch.map(async ([from, to]) => {
        const r = await atlas(from, ["net", "ping", agent[to].id, "--count", "2", "--interval", "200"]);
        assert.equal(r.code, 0, `${from}→${to}: ${show(r)}`);
        assert.match(r.stdout, /^Path : relay /m, `${from}→${to}: ${r.stdout}`);
        assert.match(r.stdout, /2 sent, 2 received$/m, `${from}→${to}: ${r.stdout}`);
        console.log(`# ${from}→${to}: ${r.stdout.trimEnd().split("\n").at(-1)} (${r.ms} ms)`);
      }));
    }
  });

  test("net send works both ways and the relay's traffic never holds the message in clear", async () => {
    const batches = batchesBothWays();
    const marker = `atlas-tcp-secret-${randomBytes(12).toString("hex")}`;
    const forwarded = async () => {
      const r = await runAtlasIn(relayNs, relayHome, ["status", "--json"], 10_000);
      return JSON.parse(r.stdout).relay_server.forwarded_bytes as number;
    };
    const before = await forwarded();
    const cap = await startCapture(relayNs, "eth0", join(await tmpHome("atlas-pcap-"), "relay.pcap"), [
      "tcp",
      "or",
      "udp",
    ]);
    let captured: Awaited<ReturnType<typeof cap.stop>>;
    try {
      for (const batch of batches) {
        await Promise.all(batch.map(async ([from, to]) => {
          const body = JSON.stringify({ secret: marker, from, to });
          const q = await atlas(from, ["net", "send", agent[to].id, body]);
          assert.equal(q.code, 0, `${from} net send: ${show(q)}`);
          const msgId = /^Queued\s*: (msg_\S+)$/m.exec(q.stdout)?.[1] ?? assert.fail(q.stdout);
          let seen: string[] = [];
          await waitFor(`${msgId} (${from}→${to}) in ${to}'s inbox`, async () => {
            const r = await atlas(to, ["net", "inbox", "--json"]);
            seen = r.stdout.split("\n").filter(Boolean);
            return seen.some((l) => JSON.parse(l).id === msgId && l.includes(marker));
          }, { timeoutMs: 30_000, intervalMs: 300, lastSeen: () => seen.length });
        }));
      }
    } finally {
      captured = await cap.stop();
    }
    const bridged = (await forwarded()) - before;
    assert.ok(bridged > 0, "the relay bridged the messages");
    assert.ok(captured.bytes.length > bridged, `the capture saw the relay's traffic: ${captured.summary}`);
    assert.equal(captured.bytes.includes(marker), false, "the relay saw the message in clear");
    console.log(
      `# ${
        2 * OTHERS.length
      } messages both ways; relay bridged ${bridged} B, capture ${captured.bytes.length} B, no plaintext`,
    );
  });
});
