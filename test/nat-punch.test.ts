/**
 * Hole punching across real NAT behaviours (SPEC §11a): four daemons, each behind its own nftables
 * router in the namespace lab (test/helpers/netns.ts, classified by test/nat-lab.test.ts) —
 * a: port-restricted cone, b: symmetric, c: full cone, d: address-restricted cone — registered
 * with one relay on the public segment, which is also their STUN server. For each pair, one
 * daemon reaches the other by node ID alone: through the relay first, then, where the two NATs
 * allow it, over a hole-punched direct path. Prints the matrix. Root only; skipped otherwise.
 *
 * The lab has one symmetric NAT, so symmetric ↔ symmetric is not covered. Punching is expected
 * to fail (and the session to stay relayed, with the reason in `status`) only for symmetric ↔
 * port-restricted: the symmetric side's packets come from a port the port-restricted side never
 * sent to.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { cleanupHomes, initHome } from "./helpers/cli.ts";
import {
  AGENT_A,
  AGENT_B,
  AGENT_C,
  AGENT_D,
  createNet,
  killAllInNs,
  type Net,
  netnsUnavailable,
  type NsNode,
  PUB_RELAY,
  runAtlasIn,
  type RunResult,
  startInNs,
} from "./helpers/netns.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const skip = netnsUnavailable();
const PORT = 4433;
const RELAY = `${PUB_RELAY}:${PORT}`;
/** Attempts at 0, 2 and 8 s after the relayed session, each punching for ~2.5 s, plus slack. */
const PUNCH_DEADLINE_MS = 16_000;

type Agent = "a" | "b" | "c" | "d";
const KIND: Record<Agent, string> = {
  a: "port-restricted",
  b: "symmetric",
  c: "full cone",
  d: "address-restricted",
};
/** Pairs (dialler, target) and whether the two NATs let a hole be punched. */
const PAIRS: [Agent, Agent, boolean][] = [
  ["a", "c", true],
  ["c", "d", true],
  ["d", "a", true],
  ["b", "c", true],
  ["d", "b", true],
  ["a", "b", false],
];

type Session = { node_id: string; direction: string; path: string; relay: string | null; punched: boolean };
type Status = {
  public_address: string | null;
  sessions: Session[];
  relays?: { registered: boolean }[];
  hole_punch?: { node_id: string; state: string; attempts: number; last_error: string | null }[];
};

let net: Net | undefined;
const nodes: NsNode[] = [];
after(async () => {
  try {
    for (const n of nodes.splice(0).reverse()) await n.stop().catch(() => {});
    killAllInNs();
  } finally {
    net?.destroy();
    await cleanupHomes();
  }
});

describe("hole punching across NAT behaviours", { skip: skip ?? false, timeout: 300_000 }, () => {
  const agent = {} as Record<Agent, { ns: string; home: string; id: string }>;
  const atlas = (k: Agent, args: string[], ms = 20_000) => runAtlasIn(agent[k].ns, agent[k].home, args, ms);
  const show = (r: RunResult) => `exit ${r.code} after ${r.ms} ms\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
  async function status(k: Agent): Promise<Status> {
    const r = await atlas(k, ["status", "--json"], 10_000);
    assert.equal(r.code, 0, show(r));
    return JSON.parse(r.stdout);
  }
  /** The session with k that new traffic takes: a direct one when there is one (a relayed one lingers 5 s). */
  const sessionWith = (st: Status, k: Agent) => {
    const all = st.sessions.filter((s) => s.node_id === agent[k].id);
    return all.find((s) => s.path === "direct") ?? all[0];
  };

  before(async () => {
    net = createNet();
    const relayHome = (await initHome("relay")).home;
    nodes.push(await startInNs(net.ns.r, relayHome, PUB_RELAY, PORT, ["relay"]));
    const where: Record<Agent, [string, string]> = {
      a: [net.ns.a, AGENT_A],
      b: [net.ns.b, AGENT_B],
      c: [net.ns.c, AGENT_C],
      d: [net.ns.d, AGENT_D],
    };
    await Promise.all((Object.keys(where) as Agent[]).map(async (k) => {
      const [ns, host] = where[k];
      const { home, nodeId } = await initHome(`agent-${k}`);
      // The relay is the STUN server too: each daemon learns its router's mapping from its own socket.
      await writeFile(
        join(home, "state", "config.toml"),
        `[network]\nrelays = ["${RELAY}"]\n\n[stun]\nservers = ["${RELAY}"]\ntimeout = 3\n\n[transport]\ndial_timeout = 2\n`,
      );
      agent[k] = { ns, home, id: nodeId };
      nodes.push(await startInNs(ns, home, host, PORT));
    }));
    for (const k of Object.keys(where) as Agent[]) {
      const end = Date.now() + 15_000;
      let st = await status(k);
      while (!(st.relays?.[0]?.registered && st.public_address) && Date.now() < end) {
        await sleep(200);
        st = await status(k);
      }
      assert.ok(st.relays?.[0]?.registered, `${k} registered with the relay: ${JSON.stringify(st)}`);
    }
  });

  test("every pair reaches each other through the relay at once, and goes direct wherever the NATs allow", async () => {
    const matrix: Record<string, string>[] = [];
    for (const [x, y, punchable] of PAIRS) {
      // By node ID alone: x knows nothing of y but the relay both announce to.
      const ping = await atlas(x, ["net", "ping", agent[y].id, "--count", "1"]);
      assert.equal(ping.code, 0, `${x}→${y}: ${show(ping)}`);
      assert.match(ping.stdout, /^Path : relay \(atlas_[0-9a-f]{12}…@198\.18\.0\.3:4433\)$/m, ping.stdout);
      assert.ok(ping.ms <= 1500, `${x}→${y}: first Pong through the relay after ${ping.ms} ms (target ≤ 1.5 s)`);
      const t0 = Date.now();
      let st = await status(x);
      while (sessionWith(st, y)?.path !== "direct" && Date.now() - t0 < (punchable ? PUNCH_DEADLINE_MS : 14_000)) {
        await sleep(100);
        st = await status(x);
      }
      const s = sessionWith(st, y);
      const punch = st.hole_punch?.find((p) => p.node_id === agent[y].id);
      matrix.push({
        dialler: `${x} (${KIND[x]})`,
        target: `${y} (${KIND[y]})`,
        path: s?.path === "direct" ? (s.punched ? "direct (hole-punched)" : "direct") : s?.path ?? "none",
        "to direct": s?.path === "direct" ? `${((Date.now() - t0) / 1000).toFixed(1)} s after the first Pong` : "-",
        attempts: String(punch?.attempts ?? 0),
      });
      if (punchable) {
        assert.equal(s?.path, "direct", `${x}→${y} should end direct: ${JSON.stringify(st)}`);
        assert.equal(s?.punched, true);
        const other = sessionWith(await status(y), x);
        assert.equal(other?.path, "direct", `${y} sees the direct session too`);
        assert.equal(other?.punched, true);
        const again = await atlas(x, ["net", "ping", agent[y].id, "--count", "1", "--json"]);
        assert.equal(again.code, 0, show(again));
        const j = JSON.parse(again.stdout);
        assert.equal(j.path, "direct");
        assert.equal(j.punched, true);
      } else {
        assert.equal(s?.path, "relay", `${x}→${y} cannot be punched and stays relayed: ${JSON.stringify(st)}`);
        assert.ok(punch && punch.attempts >= 1, `punching was tried: ${JSON.stringify(punch)}`);
        assert.ok(punch.last_error, "status says why it stayed relayed");
        const human = await atlas(x, ["status"]);
        assert.match(human.stdout, /hole punch atlas_[0-9a-f]{12}…: (failed|trying) after \d attempt\(s\) \(.+\)/);
      }
      const bye = await atlas(x, ["net", "disconnect", agent[y].id]);
      assert.equal(bye.code, 0, show(bye));
    }
    console.table(matrix);
  });
});
