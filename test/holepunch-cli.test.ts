/**
 * Hole punching as real processes on 127.0.0.1 (docs/protocol.md#hole-punching): an `atlas relay` and daemons that know
 * each other only by node ID and the relay. Two punching daemons end on a direct, hole-punched
 * session; `transport.hole_punch = false` on either side keeps it relayed (the dialler does not
 * try; a target that does not advertise `punch/1` is never asked); a one-shot CLI command never
 * punches. Which NATs let a hole through is test/nat-punch.test.ts's job.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { appendFile } from "node:fs/promises";
import { join } from "node:path";
import { cleanupHomes, initHome, killAll, type Listener, runAtlas, startListener } from "./helpers/cli.ts";
import { waitFor } from "./helpers/wait.ts";

after(async () => {
  killAll();
  await cleanupHomes();
});

interface StatusJson {
  relays: { registered: boolean }[];
  sessions: { node_id: string; path: string; punched: boolean }[];
  hole_punch: { node_id: string; state: string; attempts: number }[];
}

async function status(home: string): Promise<StatusJson> {
  const r = await runAtlas(["status", "--json"], { home });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

describe("hole punching between daemons (loopback)", { timeout: 120_000 }, () => {
  let relayAddr = "";

  before(async () => {
    const relay = await startListener((await initHome("relay-node")).home, [], { cmd: ["relay"] });
    relayAddr = `127.0.0.1:${relay.port}`;
  });

  /** A daemon that knows the relay only, registered with it; `punch` sets transport.hole_punch. */
  async function daemon(name: string, punch: boolean): Promise<{ home: string; node: Listener }> {
    const { home } = await initHome(name);
    await appendFile(
      join(home, "state", "config.toml"),
      `\n[network]\nrelays = ["${relayAddr}"]\n\n[transport]\nhole_punch = ${punch}\nrelay_announce_interval = 1\n`,
    );
    const node = await startListener(home, []);
    await waitFor(`${name} registered with the relay`, async () => (await status(home)).relays[0]?.registered, {
      intervalMs: 100,
    });
    return { home, node };
  }

  /** x pings y by node ID (through the relay), then its session with y after `waitMs`. */
  async function pathAfter(x: { home: string }, y: { node: Listener }, waitMs: number) {
    const ping = await runAtlas(["net", "ping", y.node.nodeId], { home: x.home });
    assert.equal(ping.code, 0, ping.stderr);
    assert.match(ping.stdout, /^Path : relay \(/m);
    let st = await status(x.home);
    const direct = () => st.sessions.some((s) => s.node_id === y.node.nodeId && s.path === "direct");
    await waitFor("a direct session", async () => ((st = await status(x.home)), direct()), {
      timeoutMs: waitMs,
      intervalMs: 100,
    }).catch(() => {}); // the caller judges the path, direct or not
    const mine = st.sessions.filter((s) => s.node_id === y.node.nodeId);
    return { st, session: mine.find((s) => s.path === "direct") ?? mine[0] };
  }

  test("two punching daemons end on a direct, hole-punched session", async () => {
    const a = await daemon("alpha", true);
    const b = await daemon("beta", true);
    const { session } = await pathAfter(b, a, 5000);
    assert.equal(session?.path, "direct");
    assert.equal(session?.punched, true);
    const human = await runAtlas(["status"], { home: b.home });
    assert.match(human.stdout, /\[unknown via direct \(hole-punched\)\]/);
  });

  test("a dialler with transport.hole_punch = false stays relayed and tries nothing", async () => {
    const a = await daemon("gamma", true);
    const b = await daemon("delta", false);
    const { st, session } = await pathAfter(b, a, 2500);
    assert.equal(session?.path, "relay");
    assert.deepEqual(st.hole_punch, []);
  });

  test("a target with transport.hole_punch = false does not advertise punch/1 and is never asked", async () => {
    const a = await daemon("epsilon", false);
    const b = await daemon("zeta", true);
    const { st, session } = await pathAfter(b, a, 2500);
    assert.equal(session?.path, "relay");
    assert.deepEqual(st.hole_punch, [], "no attempt toward a peer that did not list punch/1");
    assert.deepEqual((await status(a.home)).hole_punch, []);
  });

  test("a one-shot CLI command stays on the path it got (only a daemon punches)", async () => {
    const a = await daemon("eta", true);
    const { home } = await initHome("theta");
    await appendFile(join(home, "state", "config.toml"), `\n[network]\nrelays = ["${relayAddr}"]\n`);
    const ping = await runAtlas(["net", "ping", a.node.nodeId, "--count", "4", "--interval", "300"], { home });
    assert.equal(ping.code, 0, ping.stderr);
    assert.match(ping.stdout, /^Path : relay \(/m);
    assert.doesNotMatch(ping.stdout, /hole-punched/);
    assert.match(ping.stdout, /4 sent, 4 received$/m);
  });
});
