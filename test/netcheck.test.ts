/**
 * `atlas netcheck` (issue 14): on loopback, its output shapes and exit codes; in the NAT lab
 * (test/helpers/netns.ts, root and coturn only), that it tells an endpoint-independent NAT from a
 * symmetric one and a host whose router drops UDP (it reaches the relay over TCP) from an open one.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawnSync } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { cleanupAll, freePort, initHome, type Listener, runAtlas, startListener } from "./helpers/cli.ts";
import { type FakeHub, startFakeHub } from "./helpers/farcaster.ts";
import {
  createNet,
  killAllInNs,
  NAT_A_WAN,
  type Net,
  netnsUnavailable,
  PUB_BOOT1,
  PUB_BOOT2,
  PUB_RELAY,
  runAtlasIn,
  startInNs,
  startStunServer,
  STUN_PORT,
} from "./helpers/netns.ts";
import { validate } from "../src/daemon/schema.ts";
import { NETCHECK } from "../src/daemon/shapes.ts";

after(cleanupAll);

interface Report {
  udp: boolean | null;
  public_address: string | null;
  behind_nat: boolean | null;
  mapping: string;
  mapping_reason: string;
  stun: { server: string; ok: boolean; public_address: string | null; rtt_ms: number | null; error: string | null }[];
  relays: {
    target: string;
    ok: boolean;
    node_id: string | null;
    udp_rtt_ms: number | null;
    handshake_ms: number | null;
    tcp: { address: string | null; ok: boolean; tls_ms: number | null; error: string | null };
    error: string | null;
  }[];
  bootstrap: Report["relays"];
  hub: { url: string; ok: boolean; http_status: number | null; rtt_ms: number | null; error: string | null } | null;
  reachable: boolean;
  duration_ms: number;
}

/** Only the hub a test starts is ever asked: signature-only verification otherwise. */
const NO_HUB = '[farcaster]\nverify = "signature"\n';

describe("netcheck on loopback", { timeout: 60_000 }, () => {
  let relay: Listener;
  let boot: Listener;
  let home: string;
  let hub: FakeHub;

  after(() => hub?.close());
  before(async () => {
    hub = await startFakeHub({ owners: new Map(), usernames: new Map() });
    relay = await startListener((await initHome("relay-node")).home, [], { cmd: ["relay"] });
    boot = await startListener((await initHome("boot-node")).home, [], { cmd: ["bootstrap"] });
    home = (await initHome("checker")).home;
    // Relay and bootstrap nodes answer STUN on their QUIC port (docs/protocol.md#stun): two STUN servers.
    await writeFile(
      join(home, "state", "config.toml"),
      `[stun]\nservers = ["${relay.address}", "${boot.address}"]\n[network]\nrelays = ["${relay.nodeId}@${relay.address}"]\nbootstrap = ["${boot.address}"]\n[farcaster]\nhub_url = "${hub.url}"\n`,
    );
  });

  test("--json reports UDP, both STUN answers, an endpoint-independent mapping and both nodes' round trips", async () => {
    const t0 = Date.now();
    const r = await runAtlas(["netcheck", "--json"], { home });
    const wall = Date.now() - t0;
    assert.equal(r.code, 0, r.stderr);
    const j: Report = JSON.parse(r.stdout);
    assert.deepEqual(validate(NETCHECK, j), [], "the documented shape (src/daemon/shapes.ts)");
    assert.equal(j.udp, true);
    assert.equal(j.reachable, true);
    assert.match(j.public_address!, /^127\.0\.0\.1:\d+$/);
    assert.equal(j.behind_nat, false);
    assert.equal(j.mapping, "endpoint-independent");
    assert.deepEqual(j.stun.map((s) => [s.server, s.ok, s.public_address]), [
      [relay.address, true, j.public_address],
      [boot.address, true, j.public_address],
    ]);
    assert.equal(j.relays.length, 1);
    assert.deepEqual(
      [j.relays[0]!.ok, j.relays[0]!.node_id, j.relays[0]!.error],
      [true, relay.nodeId, null],
    );
    const tcp = j.relays[0]!.tcp;
    assert.deepEqual([tcp.address, tcp.ok, tcp.error], [relay.address, true, null], "the relay's TCP leg, same port");
    assert.ok(tcp.tls_ms! > 0);
    assert.equal(j.bootstrap[0]!.tcp.ok, true);
    assert.ok(j.relays[0]!.udp_rtt_ms! > 0 && j.relays[0]!.handshake_ms! > 0);
    assert.deepEqual([j.bootstrap[0]!.ok, j.bootstrap[0]!.node_id], [true, boot.nodeId]);
    assert.deepEqual([j.hub?.url, j.hub?.ok, j.hub?.error], [hub.url, true, null]);
    assert.equal(typeof j.hub?.http_status, "number");
    assert.ok(wall < 3_000, `netcheck took ${wall} ms`);
  });

  test("the human report has one labelled line per finding", async () => {
    const r = await runAtlas(["netcheck"], { home });
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split("\n");
    assert.match(lines[0]!, /^UDP {7}: yes \(4 of 4 answered\)$/);
    assert.match(lines[1]!, /^Public {4}: 127\.0\.0\.1:\d+ \(this host's own address: no NAT\)$/);
    assert.match(
      lines[2]!,
      /^Mapping {3}: endpoint-independent: \S+ and \S+ saw the same 127\.0\.0\.1:\d+: hole punching can work$/,
    );
    assert.match(lines[3]!, /^STUN {6}: 127\.0\.0\.1:\d+ saw 127\.0\.0\.1:\d+ in \d+\.\d ms$/);
    assert.match(lines[4]!, /^ {10}: 127\.0\.0\.1:\d+ saw /);
    assert.match(
      lines[5]!,
      /^Relays {4}: atlas_[0-9a-f]{64}@127\.0\.0\.1:\d+ reachable: UDP round trip \d+\.\d ms \(connect and handshake \d+ ms\); TCP 127\.0\.0\.1:\d+ TLS in \d+\.\d ms$/,
    );
    assert.match(lines[6]!, /^Bootstrap : 127\.0\.0\.1:\d+ reachable: /);
    assert.match(lines[7]!, /^Hub {7}: http:\/\/127\.0\.0\.1:\d+ reachable: HTTP \d{3} in \d+\.\d ms$/);
    assert.match(lines[8]!, /^Took {6}: \d+ ms$/);
    assert.equal(lines.length, 9);
  });

  test("a hub that never answers is reported unreachable within the budget; the UDP verdict stands", async () => {
    hub.down = "hang";
    try {
      const t0 = Date.now();
      const r = await runAtlas(["netcheck", "--json"], { home });
      assert.ok(Date.now() - t0 < 3_000, `took ${Date.now() - t0} ms`);
      assert.equal(r.code, 0, r.stderr);
      const j: Report = JSON.parse(r.stdout);
      assert.deepEqual([j.hub?.ok, j.hub?.http_status], [false, null]);
      assert.match(j.hub!.error!, /^no answer within \d+ ms$/);
      assert.equal(j.reachable, true);
    } finally {
      hub.down = false;
    }
  });

  test("with signature-only verification the hub is not asked", async () => {
    const h = (await initHome("sig-only")).home;
    await writeFile(join(h, "state", "config.toml"), `[stun]\nservers = ["${relay.address}"]\n${NO_HUB}`);
    const before = hub.requests;
    const r = await runAtlas(["netcheck"], { home: h });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /\nHub {7}: not used \(farcaster\.verify = "signature"\)\n/);
    assert.equal(hub.requests, before);
  });

  test("nothing answering prints the report and exits 3 with one error line, within 3 s", async () => {
    const h = (await initHome("alone")).home;
    const dead = `127.0.0.1:${await freePort()}`;
    await writeFile(join(h, "state", "config.toml"), `[stun]\nservers = ["${dead}"]\n${NO_HUB}`);
    const t0 = Date.now();
    const r = await runAtlas(["netcheck"], { home: h });
    assert.ok(Date.now() - t0 < 3_000, `took ${Date.now() - t0} ms`);
    assert.equal(r.code, 3);
    assert.equal(
      r.stderr,
      "error: nothing answered: no STUN server, relay or bootstrap node is reachable over UDP or TCP\n",
    );
    assert.match(r.stdout, /^UDP {7}: no: none of 1 answered\n/);
    assert.match(
      r.stdout,
      new RegExp(`\\nSTUN {6}: ${dead.replace(/\./g, "\\.")} no answer \\(no answer within \\d+ ms\\)\\n`),
    );
    assert.match(r.stdout, /\nRelays {4}: none configured\nBootstrap : none configured\n/);
  });

  test("a malformed --relay is a usage error: one line, exit 2, nothing probed", async () => {
    const r = await runAtlas(["netcheck", "--relay", "garbage"], { home });
    assert.equal(r.code, 2);
    assert.equal(r.stdout, "");
    assert.equal(
      r.stderr,
      "error: 'network.relays' entries must be host:port or atlas_<node ID>@host:port, optionally after tcp://, got 'garbage'\n",
    );
  });

  test("nothing configured exits 3 saying so", async () => {
    const h = (await initHome("empty")).home;
    await writeFile(join(h, "state", "config.toml"), `[stun]\nservers = []\n${NO_HUB}`);
    const r = await runAtlas(["netcheck", "--json"], { home: h });
    assert.equal(r.code, 3);
    assert.equal(JSON.parse(r.stdout).udp, null);
    assert.deepEqual(validate(NETCHECK, JSON.parse(r.stdout)), []);
    assert.deepEqual(JSON.parse(r.stderr), {
      error: {
        code: "ERR_UNREACHABLE",
        message: "nothing to check: no STUN server, relay or bootstrap node is configured",
      },
    });
  });
});

// ---- the NAT lab ----

const has = (cmd: string) => spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;
const skip = netnsUnavailable() ??
  (has("turnserver") ? null : "turnserver (Debian package coturn) is not installed; .ci/run installs it as root");

describe("netcheck in the NAT lab", { skip: skip ?? false, timeout: 90_000 }, () => {
  let net: Net | undefined;
  let turn: ChildProcess | undefined;
  const homes: Record<string, string> = {};

  before(async () => {
    net = createNet();
    // Agent c's router (natC) drops every forwarded UDP packet: a host on a UDP-blocking network.
    spawnSync("ip", [
      "netns",
      "exec",
      net.ns.natC,
      "nft",
      "insert",
      "rule",
      "ip",
      "atlnat",
      "filter_fwd",
      "meta",
      "l4proto",
      "udp",
      "drop",
    ]);
    turn = await startStunServer(net);
    const relayHome = (await initHome("lab-relay")).home;
    const relay = await startInNs(net.ns.r, relayHome, PUB_RELAY, 4433, ["relay"]);
    for (const k of ["a", "b", "c", "p"]) {
      homes[k] = (await initHome(`lab-${k}`)).home;
      await writeFile(
        join(homes[k]!, "state", "config.toml"),
        `[network]\nhost = "0.0.0.0"\nrelays = ["${relay.nodeId}@${PUB_RELAY}:4433"]\n\n[stun]\nservers = ["${PUB_BOOT1}:${STUN_PORT}", "${PUB_BOOT2}:${STUN_PORT}"]\n${NO_HUB}`,
      );
    }
  });

  after(() => {
    try {
      killAllInNs();
      turn?.kill("SIGKILL");
    } finally {
      net?.destroy();
    }
  });

  /**
   * netcheck --json in every agent's namespace: c (the timed one) alone, so that its wall-clock time
   * is the command's and not that of four node start-ups sharing the CPU; the other three at once.
   */
  let results: Record<string, { code: number | null; j: Report; ms: number }> = {};
  const check = async () => {
    if (Object.keys(results).length) return results;
    const one = async (k: "a" | "b" | "c" | "p") => {
      const r = await runAtlasIn(net!.ns[k], homes[k]!, ["netcheck", "--json"], 15_000);
      return [k, { code: r.code, j: JSON.parse(r.stdout) as Report, ms: r.ms }] as const;
    };
    const c = await one("c");
    results = Object.fromEntries([c, ...(await Promise.all((["a", "b", "p"] as const).map(one)))]);
    return results;
  };

  test("behind a port-preserving NAT both STUN servers see one public address: endpoint-independent", async () => {
    const { a } = await check();
    assert.equal(a!.code, 0);
    assert.equal(a!.j.udp, true);
    assert.equal(a!.j.mapping, "endpoint-independent");
    assert.equal(a!.j.behind_nat, true);
    assert.match(a!.j.public_address!, new RegExp(`^${NAT_A_WAN.replace(/\./g, "\\.")}:\\d+$`));
    assert.equal(a!.j.stun[0]!.public_address, a!.j.stun[1]!.public_address);
    assert.equal(a!.j.relays[0]!.ok, true);
  });

  test("behind a symmetric NAT the two servers see different ports: endpoint-dependent", async () => {
    const { b } = await check();
    assert.equal(b!.code, 0);
    assert.equal(b!.j.mapping, "endpoint-dependent");
    assert.ok(b!.j.stun.every((s) => s.ok && s.public_address!.startsWith("198.18.0.12:")));
    assert.notEqual(b!.j.stun[0]!.public_address, b!.j.stun[1]!.public_address);
    assert.match(b!.j.mapping_reason, /symmetric/);
  });

  test("a host whose router drops UDP gets no UDP answer but reaches the relay over TCP, within 3 s", async () => {
    const { c } = await check();
    assert.equal(c!.code, 0, JSON.stringify(c!.j));
    assert.equal(c!.j.udp, false);
    assert.equal(c!.j.mapping, "unknown");
    assert.deepEqual(c!.j.stun.map((s) => s.ok), [false, false]);
    assert.equal(c!.j.relays[0]!.ok, false);
    assert.equal(c!.j.relays[0]!.tcp.ok, true, JSON.stringify(c!.j.relays[0]));
    assert.equal(c!.j.reachable, true);
    assert.ok(c!.ms < 3_000, `took ${c!.ms} ms`);
  });

  test("a host on the public segment has UDP, no NAT and an endpoint-independent mapping", async () => {
    const { p } = await check();
    assert.equal(p!.code, 0);
    assert.equal(p!.j.udp, true);
    assert.equal(p!.j.behind_nat, false);
    assert.equal(p!.j.public_address!.split(":")[0], "198.18.0.30");
    assert.equal(p!.j.mapping, "endpoint-independent");
  });
});
