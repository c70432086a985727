/** STUN (docs/protocol.md#stun): client, server on the QUIC port, the daemon's public address, observed_addr rule. */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { createSocket, type Socket } from "node:dgram";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { QuicEndpoint } from "../src/transport/endpoint.ts";
import { formatAddr } from "../src/transport/addr.ts";
import { discoverPublicAddress, stunBinding } from "../src/stun/client.ts";
import { serveStun } from "../src/stun/server.ts";
import { StunService } from "../src/stun/service.ts";
import { BINDING_REQUEST, createMessage, encodeMessage } from "../src/stun/codec.ts";
import { cleanupHomes, initHome, killAll, NO_STUN, runAtlas, startListener } from "./helpers/cli.ts";
import { waitFor } from "./helpers/wait.ts";
import { bindTestEndpoint } from "./helpers/endpoint.ts";

const cleanups: (() => unknown)[] = [];
after(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  killAll();
  await cleanupHomes();
});

async function endpoint(): Promise<QuicEndpoint> {
  const ep = await bindTestEndpoint();
  cleanups.push(() => ep.close());
  return ep;
}

/** A UDP port that swallows everything: a STUN server that never answers. */
async function deadServer(): Promise<string> {
  const s = createSocket("udp4");
  await new Promise<void>((r) => s.bind(0, "127.0.0.1", () => r()));
  cleanups.push(() => s.close());
  return `127.0.0.1:${s.address().port}`;
}

/** `[stun] servers = [...]` in a home's config, so no test ever asks a public STUN server. */
async function setStunServers(home: string, servers: string[]): Promise<void> {
  const file = join(home, "state", "config.toml");
  const cur = await readFile(file, "utf8").catch(() => "");
  await writeFile(file, cur.replace(NO_STUN, "") + `\n[stun]\nservers = ${JSON.stringify(servers)}\n`);
}

async function status(
  home: string,
): Promise<{ public_address: string | null; public_address_source: string; listen_address: string }> {
  const r = await runAtlas(["status", "--json"], { home });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

async function waitStatus(home: string, pred: (s: Awaited<ReturnType<typeof status>>) => boolean, ms = 10_000) {
  let last: Awaited<ReturnType<typeof status>> | undefined;
  return await waitFor("the status to match", async () => pred(last = await status(home)) && last, {
    timeoutMs: ms,
    intervalMs: 150,
    lastSeen: () => ({ a: last?.public_address, s: last?.public_address_source }),
  });
}

describe("STUN client and server on the QUIC socket", () => {
  test("stunBinding against serveStun returns the client's own socket address", async () => {
    const server = await endpoint();
    serveStun(server);
    const client = await endpoint();
    const got = await stunBinding(client, server.local, 2000);
    assert.deepEqual(got, client.local);
  });

  test("STUN servers are asked in order: after a dead one a live one answers within the 3 s total", async () => {
    const server = await endpoint();
    serveStun(server);
    const client = await endpoint();
    const dead = await deadServer();
    const live = formatAddr(server.local);
    const t0 = Date.now();
    const d = await discoverPublicAddress(client, [dead, live], 3000);
    const took = Date.now() - t0;
    assert.equal(d.server, live);
    assert.deepEqual(d.address, client.local);
    assert.ok(took < 3000, `took ${took} ms`);
    await assert.rejects(discoverPublicAddress(client, [dead, await deadServer()], 600), /no answer within/);
  });

  test("serveStun rate-limits a burst from one source IP", async () => {
    const server = await endpoint();
    const h = serveStun(server, { perIpPerSecond: 5 });
    const sock: Socket = createSocket("udp4");
    await new Promise<void>((r) => sock.bind(0, "127.0.0.1", () => r()));
    cleanups.push(() => sock.close());
    let answers = 0;
    sock.on("message", () => answers++);
    for (let i = 0; i < 30; i++) {
      const m = createMessage(BINDING_REQUEST);
      m.addFingerprint();
      sock.send(encodeMessage(m), server.local.port, "127.0.0.1");
    }
    await waitFor("all 30 requests answered or refused", () => h.stats.answered + h.stats.limited === 30);
    await waitFor("every answer received", () => answers === h.stats.answered);
    assert.ok(answers >= 5 && answers < 30, `answers: ${answers}`);
    assert.ok(answers <= 8, `burst beyond the bucket was answered: ${answers}`);
    assert.equal(h.stats.answered, answers);
    assert.equal(h.stats.limited, 30 - answers);
  });

  test("a real STUN server (coturn's turnserver)", async (t) => {
    if (spawnSync("sh", ["-c", "command -v turnserver"]).status !== 0) {
      t.skip("turnserver (Debian package coturn) is not installed; .ci/run installs it when run as root");
      return;
    }
    const probe = createSocket("udp4");
    await new Promise<void>((r) => probe.bind(0, "127.0.0.1", () => r()));
    const port = probe.address().port;
    probe.close();
    const ts: ChildProcess = spawn("turnserver", [
      "-n",
      "--stun-only",
      "-p",
      String(port),
      "-L",
      "127.0.0.1",
      "--no-cli",
      "--no-tls",
      "--no-dtls",
      "--log-file",
      "stdout",
      "--simple-log",
      "--pidfile",
      join("/tmp", `atlas-turn-${port}.pid`),
    ], { stdio: "ignore" });
    cleanups.push(() => ts.kill("SIGKILL"));
    const client = await endpoint();
    // turnserver takes a moment to listen: ask until it answers.
    const end = Date.now() + 8000;
    let got = null;
    while (!got && Date.now() < end) {
      got = await stunBinding(client, { host: "127.0.0.1", port }, 500).catch(() => null);
    }
    assert.deepEqual(got, client.local);
    const d = await discoverPublicAddress(client, [await deadServer(), `127.0.0.1:${port}`], 3000);
    assert.deepEqual(d.address, client.local);
  });
});

describe("StunService", () => {
  test("two peers agreeing on an observed address set the public address, one is not enough, and STUN wins over both", async () => {
    const ep = await endpoint();
    const s = new StunService(ep, { servers: [], timeoutMs: 1000, intervalMs: 0 });
    await s.check();
    assert.equal(s.publicAddress(), formatAddr(ep.local));
    assert.equal(s.status().source, "bind address (no STUN server configured)");
    s.noteObserved("203.0.113.7:4433", "atlas_a");
    s.noteObserved("203.0.113.7:4433", "atlas_a"); // the same peer twice is still one peer
    s.noteObserved("198.51.100.1:4433", "atlas_b"); // disagreeing
    assert.equal(s.state().source, "bind");
    s.noteObserved("203.0.113.7:4433", "atlas_b"); // b changes its mind: now two agree
    assert.equal(s.publicAddress(), "203.0.113.7:4433");
    assert.match(s.status().source, /^observed by 2 peers/);
    s.noteObserved("not an address", "atlas_c");
    assert.equal(s.publicAddress(), "203.0.113.7:4433");

    const server = await endpoint();
    serveStun(server);
    const live = formatAddr(server.local);
    const s2 = new StunService(ep, { servers: [live], timeoutMs: 2000, intervalMs: 0 });
    s2.noteObserved("203.0.113.7:4433", "atlas_a");
    s2.noteObserved("203.0.113.7:4433", "atlas_b");
    await s2.check();
    assert.deepEqual(s2.status(), {
      address: formatAddr(ep.local),
      source: `stun ${live}`,
      kind: "stun",
      server: live,
      checked_at: s2.status().checked_at,
    });
  });
});

describe("daemon public address", () => {
  test("a daemon learns its address from our bootstrap node's STUN answer", async () => {
    const b = await initHome("boot");
    await setStunServers(b.home, []);
    const boot = await startListener(b.home, [], { cmd: ["bootstrap"] });
    const a = await initHome("alpha");
    await setStunServers(a.home, [boot.address]);
    const d = await startListener(a.home, [], { cmd: ["daemon"] });
    const st = await waitStatus(a.home, (s) => s.public_address_source.startsWith("stun"));
    assert.equal(st.public_address, d.address);
    assert.equal(st.public_address_source, `stun ${boot.address}`);
    const human = await runAtlas(["status"], { home: a.home });
    assert.match(human.stdout, new RegExp(`Public.*${d.address.replace(/\./g, "\\.")} \\(stun `));
    assert.equal(await d.stop(), 0);
    assert.equal(await boot.stop(), 0);
  });

  test("without a STUN answer the public address is the bind address, and status says why", async () => {
    const a = await initHome("alpha");
    await setStunServers(a.home, [await deadServer(), await deadServer()]);
    const t0 = Date.now();
    const d = await startListener(a.home, [], { cmd: ["daemon"] });
    assert.ok(Date.now() - t0 < 2500, "STUN must not delay start-up");
    const st = await waitStatus(a.home, (s) => s.public_address_source.startsWith("bind address (STUN failed"), 8000);
    assert.equal(st.public_address, d.address);
    assert.match(st.public_address_source, /no answer within/);
    assert.equal(await d.stop(), 0);

    const c = await initHome("gamma");
    await setStunServers(c.home, []);
    const dc = await startListener(c.home, [], { cmd: ["daemon"] });
    const sc = await waitStatus(c.home, (s) => s.public_address_source === "bind address (no STUN server configured)");
    assert.equal(sc.public_address, dc.address);
    assert.equal(await dc.stop(), 0);
  });
});
