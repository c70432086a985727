/**
 * Relay as real processes (docs/protocol.md#relay, docs/protocol.md#dialing, README.md#commands): `atlas relay`, a daemon registered with it, and a
 * one-shot CLI that reaches the daemon only through the relay — `net ping`, `net send`,
 * `net connect` output shapes, `net peers`, `atlas status` on both sides, and a relay restart the
 * daemon survives without operator action.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { appendFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { cleanupHomes, initHome, killAll, type Listener, runAtlas, startListener } from "./helpers/cli.ts";
import { waitFor } from "./helpers/wait.ts";

after(async () => {
  killAll();
  await cleanupHomes();
});

const config = (home: string, text: string) => appendFile(join(home, "state", "config.toml"), text);

/** The fields of `atlas status --json` these tests read (relay_server on relay nodes only). */
interface StatusJson {
  public_address: string | null;
  public_address_source: string;
  relays: { registered: boolean }[];
  relay_pipes: { open: number; datagram_drops: number };
  relay_server: {
    registered: number;
    pipes: number;
    forwarded_packets: number;
    pipes_refused: number;
    refused: Record<string, number>;
  };
}

async function status(home: string): Promise<StatusJson> {
  const r = await runAtlas(["status", "--json"], { home });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

/** Polls `home`'s status until `ok` holds; that status. */
async function statusWhen(what: string, home: string, ok: (s: StatusJson) => boolean, ms: number): Promise<StatusJson> {
  let last: StatusJson | undefined;
  return await waitFor(what, async () => ok(last = await status(home)) && last, {
    timeoutMs: ms,
    intervalMs: 200,
    lastSeen: () => last,
  });
}

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

describe("relay node and daemons as processes", { timeout: 120_000 }, () => {
  test("ping, send and connect reach a daemon that only the relay can reach, also after the relay restarts", async () => {
    const relayHome = await initHome("relay-node");
    let relay: Listener = await startListener(relayHome.home, [], { cmd: ["relay"] });
    const relayPort = relay.port;
    const label = `${relay.nodeId.slice(0, 18)}…@127.0.0.1:${relayPort}`;
    const a = await initHome("alpha");
    // The relay is alpha's STUN server too (docs/protocol.md#stun: relay nodes answer STUN on their QUIC port).
    await writeFile(
      join(a.home, "state", "config.toml"),
      `[stun]\nservers = ["127.0.0.1:${relayPort}"]\n\n[transport]\nrelay_announce_interval = 1\n`,
    );
    const alpha = await startListener(a.home, ["--relay", `127.0.0.1:${relayPort}`]);
    const st = await statusWhen(
      "alpha registered with the relay",
      a.home,
      (s) => s.relays?.[0]?.registered === true && s.public_address_source.startsWith("stun"),
      10_000,
    );
    assert.equal(st.public_address_source, `stun 127.0.0.1:${relayPort}`);
    assert.equal(st.public_address, alpha.address);
    assert.equal((await status(relayHome.home)).relay_server.registered, 1);
    const human = await runAtlas(["status"], { home: a.home });
    assert.match(human.stdout, new RegExp(`^Relays   : 127\\.0\\.0\\.1:${relayPort} registered$`, "m"));

    // beta knows alpha's node ID only, and the relay (its own network.relays).
    const b = await initHome("beta");
    await config(b.home, `\n[network]\nrelays = ["127.0.0.1:${relayPort}"]\n`);
    const ping = await runAtlas(["net", "ping", alpha.nodeId, "--count", "2"], { home: b.home });
    assert.equal(ping.code, 0, ping.stderr);
    assert.match(
      ping.stdout,
      new RegExp(
        `^Peer : ${esc(alpha.nodeId.slice(0, 18))}…\\nPath : relay \\(${
          esc(label)
        }\\)\\nPing : [\\dT:.Z-]+\\nPong : [\\dT:.Z-]+\\nRTT  : [\\d.]+ ms\\nRTT  : [\\d.]+ ms\\nmin/median/max [\\d./]+ ms, 2 sent, 2 received\\n$`,
      ),
    );

    // After that first contact beta knows alpha's (loopback) listen address and would go direct:
    // every first contact below starts from a fresh home that knows only alpha's ID and the relay.
    const fresh = async (name: string) => {
      const h = await initHome(name);
      await config(h.home, `\n[network]\nrelays = ["127.0.0.1:${relayPort}"]\n`);
      return h.home;
    };
    const body = `{"marker":"relayed-${Date.now()}"}`;
    const sender = await fresh("gamma");
    const send = await runAtlas(["net", "send", alpha.nodeId, body], { home: sender });
    assert.equal(send.code, 0, send.stderr);
    assert.match(
      send.stdout,
      new RegExp(
        `^Sent to  : ${esc(alpha.nodeId.slice(0, 18))}… \\[relay via relay \\(${
          esc(label)
        }\\)\\]\\nMsg ID   : msg_[0-9a-f-]+\\nAck      : received\\n$`,
      ),
    );
    const inbox = (await runAtlas(["net", "inbox", "--json"], { home: a.home })).stdout.trimEnd().split("\n");
    assert.equal(inbox.length, 1);
    assert.ok(inbox[0]!.includes(`"body":${body}`), inbox[0]);

    const connectJson = JSON.parse(
      (await runAtlas(["net", "connect", alpha.nodeId, "--json"], { home: await fresh("delta") })).stdout,
    );
    assert.equal(connectJson.path, "relay");
    assert.equal(connectJson.relay, `${relay.nodeId}@127.0.0.1:${relayPort}`);
    const connect = await runAtlas(["net", "connect", alpha.nodeId], { home: await fresh("epsilon") });
    assert.equal(connect.stdout, `Connected to ${alpha.nodeId}\nalpha [relay via relay (${label})]\n`);

    // beta's peer list names the path of its latest session with alpha, and alpha's home relay.
    const peers = JSON.parse((await runAtlas(["net", "peers", "--json"], { home: b.home })).stdout);
    const row = peers.find((p: { node_id: string }) => p.node_id === alpha.nodeId);
    assert.equal(row.last_path, "relay");
    assert.equal(row.last_relay, `${relay.nodeId}@127.0.0.1:${relayPort}`);
    assert.deepEqual(row.relays, [`${relay.nodeId}@127.0.0.1:${relayPort}`]);
    const table = (await runAtlas(["net", "peers"], { home: b.home })).stdout;
    assert.match(table, new RegExp(`relay via relay \\(${esc(label)}\\)`));

    // Every one-shot command closed its pipe: the relay holds none, and forwarded packets.
    const rs = await statusWhen("relay pipes closed", relayHome.home, (s) => s.relay_server.pipes === 0, 5000);
    assert.ok(rs.relay_server.forwarded_packets > 0);
    // … and alpha, the target of every one of them, holds no pipe state either; nothing was dropped.
    const as = await statusWhen("alpha's pipes closed", a.home, (s) => s.relay_pipes?.open === 0, 5000);
    assert.equal(as.relay_pipes.datagram_drops, 0);

    // Relay restart: alpha notices, re-registers on its own, and beta reaches it again.
    assert.equal(await relay.stop(), 0);
    await statusWhen("alpha notices the relay is gone", a.home, (s) => s.relays?.[0]?.registered === false, 15_000);
    relay = await startListener(relayHome.home, ["--port", String(relayPort)], { cmd: ["relay"] });
    await statusWhen("alpha re-registered", a.home, (s) => s.relays?.[0]?.registered === true, 20_000);
    const again = await runAtlas(["net", "ping", alpha.nodeId], { home: await fresh("zeta") });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^Path : relay \(/m);
    await alpha.stop();
    await relay.stop();
  });

  test("when no relay can pair the command exits 3 with the relay's reason", async () => {
    const relayHome = await initHome("relay-node");
    const relay = await startListener(relayHome.home, [], { cmd: ["relay"] });
    const b = await initHome("beta");
    await config(b.home, `\n[network]\nrelays = ["127.0.0.1:${relay.port}"]\n`);
    const ghost = `atlas_${"ab".repeat(32)}`;
    const r = await runAtlas(["net", "ping", ghost], { home: b.home });
    assert.equal(r.code, 3, r.stderr);
    assert.equal(
      r.stderr,
      `error: relay ${relay.nodeId}@127.0.0.1:${relay.port}: target not registered (RelayError 1: target is not registered with this relay)\n`,
    );
    // The relay counts the refusal, by code name.
    const rs = (await status(relayHome.home)).relay_server;
    assert.equal(rs.pipes_refused, 1);
    assert.deepEqual(rs.refused, { target_not_registered: 1 });
    const human = await runAtlas(["status"], { home: relayHome.home });
    assert.match(
      human.stdout,
      /^Relaying : 0 agents registered, 0\/64 pipes, .* 1 pairings refused \(0 target busy\)$/m,
    );
    await relay.stop();
  });

  test("a daemon with transport.offer_relay relays for others while staying an agent itself", async () => {
    const r = await initHome("helper");
    await config(r.home, `\n[transport]\noffer_relay = true\n`);
    const helper = await startListener(r.home, [], { cmd: ["daemon"] });
    const a = await initHome("alpha");
    const alpha = await startListener(a.home, ["--relay", helper.address]);
    await statusWhen(
      "alpha registered with the helper daemon",
      a.home,
      (s) => s.relays?.[0]?.registered === true,
      10_000,
    );
    const b = await initHome("beta");
    await config(b.home, `\n[network]\nrelays = ["${helper.address}"]\n`);
    const ping = await runAtlas(["net", "ping", alpha.nodeId], { home: b.home });
    assert.equal(ping.code, 0, ping.stderr);
    assert.match(
      ping.stdout,
      new RegExp(`^Path : relay \\(${esc(helper.nodeId.slice(0, 18))}…@${esc(helper.address)}\\)$`, "m"),
    );
    const hs = await status(r.home);
    assert.equal(hs.relay_server.registered, 1);
    assert.ok(hs.relay_server.forwarded_packets > 0);
    // … and it is still an agent: a message to it is delivered to its own inbox.
    const send = await runAtlas(["net", "send", helper.nodeId, '{"hi":1}'], { home: b.home });
    assert.equal(send.code, 0, send.stderr);
    await waitFor(
      "the message in the helper's inbox",
      async () => (await runAtlas(["net", "inbox", "--json"], { home: r.home })).stdout.includes('"body":{"hi":1}'),
      { timeoutMs: 5000, intervalMs: 200 },
    );
    await alpha.stop();
    await helper.stop();
  });
});
