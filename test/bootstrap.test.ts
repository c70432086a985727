/**
 * Bootstrap and discovery (docs/protocol.md#bootstrap-and-discovery): a bootstrap node and agent daemons as real processes
 * (registration, discovery by skill and operator, upsert + ping by ID, re-registration after a
 * bootstrap restart), and in-process checks of the protocol rules (node_id must be the session's
 * ID, capacity and staleness, signed records that are forged, altered, replayed or absent).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { appendFile } from "node:fs/promises";
import { join } from "node:path";
import { homePaths } from "../src/config/paths.ts";
import { isAtlasError } from "../src/errors.ts";
import { type Identity, identityFromSeed, loadIdentity } from "../src/identity/identity.ts";
import { generateSeed } from "../src/identity/keys.ts";
import { loadProfile, saveProfile } from "../src/identity/profile.ts";
import { parseAddr } from "../src/transport/addr.ts";
import type { PeerRecord } from "../src/wire/messages.ts";
import { makeRecord, verifyRecord } from "../src/bootstrap/record.ts";
import { Registry } from "../src/bootstrap/registry.ts";
import { serveBootstrap } from "../src/bootstrap/server.ts";
import { discover } from "../src/bootstrap/discover.ts";
import { absorbPeer } from "../src/bootstrap/merge.ts";
import { checkPeerRecord } from "../src/bootstrap/record-check.ts";
import { registerWith } from "../src/bootstrap/register.ts";
import { cleanupHomes, initHome, killAll, type Listener, runAtlas, startListener } from "./helpers/cli.ts";
import { addrOf, createTestnet } from "./helpers/testnet.ts";
import { waitFor } from "./helpers/wait.ts";
import { makeBinding } from "./helpers/farcaster.ts";
import type { AtlasNode } from "../src/net/node.ts";
import type { Session } from "../src/net/session.ts";

after(async () => {
  killAll();
  await cleanupHomes();
});

const config = (home: string, text: string) => appendFile(join(home, "state", "config.toml"), text);

async function bindAlice(home: string): Promise<void> {
  const paths = homePaths(home);
  const id = await loadIdentity(paths);
  const p = await loadProfile(paths);
  p.operator = makeBinding({
    nodeId: id.nodeId,
    fid: 1234,
    username: "alice",
    issuedAt: new Date(Date.now() - 60_000),
  });
  await saveProfile(paths, p);
}

interface Found {
  node_id: string;
  name: string;
  address: string;
  skills: string[];
  operator: { username: string } | null;
  record: string;
}

async function discoverJson(
  home: string,
  args: string[] = [],
): Promise<{ code: number | null; peers: Found[]; stderr: string }> {
  const r = await runAtlas(["net", "discover", "--json", ...args], { home });
  return { code: r.code, peers: r.code === 0 ? (JSON.parse(r.stdout).peers as Found[]) : [], stderr: r.stderr };
}

/** Poll `net discover` until every ID in `want` is listed. */
async function waitListed(home: string, want: string[], timeoutMs = 20_000): Promise<Found[]> {
  let last: Found[] = [];
  return await waitFor(
    `${want.length} registrations listed (have: ${last.map((p) => p.name).join(", ")})`,
    async () => {
      last = (await discoverJson(home)).peers;
      return want.every((id) => last.some((p) => p.node_id === id)) && last;
    },
    { timeoutMs, intervalMs: 300 },
  );
}

describe("bootstrap node and agent daemons (real processes)", () => {
  test("daemons register, are found by skill and operator, and stay findable across a bootstrap restart", {
    timeout: 120_000,
  }, async () => {
    const boot = await initHome("directory");
    // Two daemons re-registering every second, each over a fresh short-lived connection, plus the
    // test's own commands, all from 127.0.0.1: more than the default 30 handshakes a minute per IP.
    await config(boot.home, `[farcaster]\nverify = "signature"\n[security]\nhandshakes_per_ip_per_minute = 1000\n`);
    let bl: Listener = await startListener(boot.home, [], { cmd: ["bootstrap"] });
    assert.equal(bl.nodeId, boot.nodeId);

    const sum = await initHome("summariser");
    const tra = await initHome("translator");
    assert.equal((await runAtlas(["id", "add-skill", "summarise"], { home: sum.home })).code, 0);
    assert.equal((await runAtlas(["id", "add-skill", "translate"], { home: tra.home })).code, 0);
    await bindAlice(tra.home);
    for (const h of [sum.home, tra.home]) await config(h, `[bootstrap]\nregister_interval = 1\n`);
    const ds = await startListener(sum.home, ["--bootstrap", bl.address], { cmd: ["daemon"] });
    const dt = await startListener(tra.home, ["--bootstrap", bl.address], { cmd: ["daemon"] });

    const seeker = await initHome("seeker");
    await config(seeker.home, `[network]\nbootstrap = ["${bl.address}"]\n`);
    const all = await waitListed(seeker.home, [sum.nodeId, tra.nodeId]);
    assert.ok(!all.some((p) => p.node_id === seeker.nodeId), "the asker is not in its own answer");

    // --skill: only the summariser, with its signed record checked, and remembered.
    const bySkill = await discoverJson(seeker.home, ["--skill", "summarise"]);
    assert.equal(bySkill.code, 0, bySkill.stderr);
    assert.deepEqual(bySkill.peers.map((p) => p.node_id), [sum.nodeId]);
    assert.deepEqual({
      ...bySkill.peers[0]!,
      last_seen: undefined,
      bootstraps: undefined,
      relays: undefined,
      public_address: undefined,
      record_seq: undefined,
    }, {
      node_id: sum.nodeId,
      name: "summariser",
      address: ds.address,
      skills: ["summarise"],
      operator: null,
      record: "verified",
      last_seen: undefined,
      bootstraps: undefined,
      relays: undefined,
      public_address: undefined,
      record_seq: undefined,
    });
    const peers = JSON.parse((await runAtlas(["net", "peers", "--json"], { home: seeker.home })).stdout) as {
      node_id: string;
      address: string;
      trust: string;
      name: string;
      record_seq: number | null;
    }[];
    const row = peers.find((p) => p.node_id === sum.nodeId)!;
    assert.deepEqual([row.address, row.trust, row.name], [ds.address, "unknown", "summariser"]);
    assert.ok(row.record_seq! > 0);

    // The discovered address is enough to reach it by node ID prefix.
    const ping = await runAtlas(["net", "ping", sum.nodeId.slice(6, 18)], { home: seeker.home });
    assert.equal(ping.code, 0, ping.stderr);
    assert.match(ping.stdout, new RegExp(`^Peer : ${sum.nodeId.slice(0, 18)}…\\nPath : direct\\n`));

    // --operator alice and @alice are the same; the bootstrap verified the binding (signature mode).
    for (const op of ["alice", "@alice", "@Alice"]) {
      const r = await discoverJson(seeker.home, ["--operator", op]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.peers.map((p) => [p.node_id, p.operator?.username]), [[tra.nodeId, "alice"]], op);
    }
    assert.deepEqual((await discoverJson(seeker.home, ["--operator", "bob"])).peers, []);
    // A discovered username is shown, not stored as this node's own verdict.
    const tRow = (JSON.parse((await runAtlas(["net", "peers", "--json"], { home: seeker.home })).stdout) as {
      node_id: string;
      operator: unknown;
    }[]).find((p) => p.node_id === tra.nodeId)!;
    assert.equal(tRow.operator, null);

    // Human output: the table of README.md#commands.
    const human = await runAtlas(["net", "discover", "--skill", "translate"], { home: seeker.home });
    assert.equal(human.code, 0, human.stderr);
    const lines = human.stdout.trimEnd().split("\n");
    assert.match(lines[0]!, /^NODE ID\s+NAME\s+ADDRESS\s+SKILLS\s+OPERATOR\s+LAST SEEN$/);
    assert.equal(lines.length, 2);
    assert.match(
      lines[1]!,
      new RegExp(
        `^${tra.nodeId.slice(0, 18)}…\\s+translator\\s+${
          dt.address.replace(/\./g, "\\.")
        }\\s+translate\\s+@alice\\s+\\d+s ago$`,
      ),
    );

    // The bootstrap node's own home answers from its registry.
    const local = await runAtlas(["net", "discover", "--skill", "summarise", "--json"], { home: boot.home });
    assert.equal(local.code, 0, local.stderr);
    assert.deepEqual((JSON.parse(local.stdout).peers as Found[]).map((p) => p.node_id), [sum.nodeId]);

    // Restart the bootstrap node on the same port: it forgets everything; the daemons come back.
    const port = bl.port;
    assert.equal(await bl.stop(), 0);
    const down = await runAtlas(["net", "discover", "--json"], { home: seeker.home });
    assert.equal(down.code, 3, "no bootstrap answered: unreachable");
    assert.equal(JSON.parse(down.stderr).error.code, "ERR_UNREACHABLE");
    bl = await startListener(boot.home, ["--port", String(port)], { cmd: ["bootstrap"] });
    assert.equal(bl.port, port);
    await waitListed(seeker.home, [sum.nodeId, tra.nodeId]);
    assert.match(ds.stderr(), /registered with bootstrap node/);

    // A daemon runs discovery for its CLI (and passes --bootstrap flags along).
    const viaDaemon = await runAtlas(["net", "discover", "--skill", "translate", "--json"], { home: sum.home });
    assert.equal(viaDaemon.code, 0, viaDaemon.stderr);
    assert.deepEqual((JSON.parse(viaDaemon.stdout).peers as Found[]).map((p) => p.node_id), [tra.nodeId]);

    for (const l of [bl, ds, dt]) assert.equal(await l.stop(), 0);
  });

  test("discover without a bootstrap node exits 1 naming network.bootstrap and --bootstrap", async () => {
    const h = await initHome("lonely");
    const r = await runAtlas(["net", "discover", "--skill", "x"], { home: h.home });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^error: no bootstrap node configured: .*network\.bootstrap.*--bootstrap/);
    const j = await runAtlas(["net", "discover", "--json"], { home: h.home });
    assert.equal(j.code, 1);
    assert.equal(JSON.parse(j.stderr).error.code, "ERR_CONFIG");
  });
});

// ---------------------------------------------------------------------------------------------
// In-process

const net = createTestnet({ prefix: "atlas-boot-" });
after(() => net.destroy());

const rejectedWith = (code: string, num: number) => (e: unknown) =>
  isAtlasError(e) && e.code === code && e.message.includes(String(num));

describe("bootstrap protocol rules (in-process)", () => {
  describe("a bootstrap node of capacity 2 whose records go stale after 1 s", () => {
    let boot: AtlasNode;
    let registry: Registry;
    let x: AtlasNode, y: AtlasNode, z: AtlasNode;
    let clock = Math.floor(Date.now() / 1000); // the registry's clock, moved on by hand below
    let s: Session;
    const claim = () => ({
      type: "BootstrapRegister" as const,
      node_id: y.nodeId,
      address: addrOf(x),
      timestamp: Math.floor(Date.now() / 1000),
    });

    before(async () => {
      boot = await net.node({
        name: "boot",
        configure: (c) => {
          c.bootstrap.capacity = 2;
          c.bootstrap.stale_after = 1;
          // Rate limits are not the subject here: x sends a dozen requests within a second.
          for (const tier of Object.values(c.rate_limit)) tier.per_second = tier.per_minute = 1000;
        },
      });
      registry = serveBootstrap(boot, { now: () => clock });
      [x, y, z] = [
        await net.node({ name: "x" }),
        await net.node({ name: "y", skills: ["summarise"] }),
        await net.node({ name: "z" }),
      ];
      s = await x.connectTo(parseAddr(addrOf(boot))!);
    });

    test("a registration for another node than the session's is refused with 2003", async () => {
      await assert.rejects(s.request(claim(), 5000), rejectedWith("ERR_MESSAGE_REJECTED", 2003));
      assert.equal(registry.size, 0);
    });

    test("a record signed with another node's key is refused with 2003", async () => {
      const forged = makeRecord(y.identity, { address: "203.0.113.1:4433", relays: [], name: "x", skills: [] });
      await assert.rejects(
        s.request({ ...claim(), node_id: x.nodeId, record: forged }, 5000),
        rejectedWith("ERR_MESSAGE_REJECTED", 2003),
      );
      assert.equal(registry.size, 0);
    });

    test("a record altered after signing is refused with 2003", async () => {
      const good = makeRecord(x.identity, { address: addrOf(x), relays: [], name: "x", skills: [] });
      const altered = { data: Uint8Array.from(good.data), signature: good.signature };
      altered.data[altered.data.length - 1]! ^= 1;
      await assert.rejects(
        s.request({ ...claim(), node_id: x.nodeId, record: altered }, 5000),
        rejectedWith("ERR_MESSAGE_REJECTED", 2003),
      );
      assert.equal(registry.size, 0);
      await s.disconnect();
    });

    test("a registration stores the node's card, its observed address and its signed record", async () => {
      await registerWith(x, addrOf(boot));
      await registerWith(y, addrOf(boot));
      const e = registry.get(y.nodeId)!;
      assert.deepEqual([e.name, e.skills, e.address, e.observed_address], ["y", ["summarise"], addrOf(y), addrOf(y)]);
      assert.ok(verifyRecord(y.nodeId, e.record!).seq > 0);
    });

    test("a full registry refuses a new node with 4001 but lets a known one renew", async () => {
      await registerWith(x, addrOf(boot));
      await assert.rejects(registerWith(z, addrOf(boot)), rejectedWith("ERR_RATE_LIMITED", 4001));
      assert.equal(registry.size, 2);
    });

    test("stale records make room for a new registration and are no longer discovered", async () => {
      clock += 2;
      await registerWith(z, addrOf(boot));
      assert.equal(registry.size, 1);
      const seen = await discover(x, { bootstrap: [addrOf(boot)] });
      assert.deepEqual(seen.peers.map((p) => [p.node_id, p.record]), [[z.nodeId, "verified"]]);
    });
  });

  test("the registry answers newest first, filtered, capped and without stale entries", () => {
    let now = 1000;
    const r = new Registry({ capacity: 10, staleAfter: 60, now: () => now });
    const ids = [0, 1, 2].map(() => identityFromSeed(generateSeed()));
    const card = (id: Identity, skills: string[], op?: string) => ({
      publicKey: id.publicKey,
      name: "n",
      skills,
      relays: [],
      verdict: op
        ? ({ status: "verified", fid: 1, username: op } as const)
        : ({ status: "unconfirmed", username: "mallory", reason: "x" } as const),
    });
    r.register({ nodeId: ids[0]!.nodeId, card: card(ids[0]!, ["a"]), remoteAddress: "10.0.0.1:1" }, {
      node_id: ids[0]!.nodeId,
      address: "10.0.0.1:1",
    });
    now += 10;
    r.register({ nodeId: ids[1]!.nodeId, card: card(ids[1]!, ["A", "b"], "Alice"), remoteAddress: "10.0.0.2:2" }, {
      node_id: ids[1]!.nodeId,
      address: "192.168.1.2:2",
    });
    now += 10;
    r.register({ nodeId: ids[2]!.nodeId, card: card(ids[2]!, ["b"], undefined), remoteAddress: "10.0.0.3:3" }, {
      node_id: ids[2]!.nodeId,
      address: "10.0.0.3:3",
    });
    assert.deepEqual(r.discover({}).map((p) => p.node_id), [ids[2]!.nodeId, ids[1]!.nodeId, ids[0]!.nodeId]);
    assert.deepEqual(r.discover({ skill: "a" }).map((p) => p.node_id), [ids[1]!.nodeId, ids[0]!.nodeId]);
    assert.deepEqual(r.discover({ operator: "@alice" }).map((p) => p.node_id), [ids[1]!.nodeId]);
    assert.deepEqual(r.discover({ operator: "mallory" }), [], "an unconfirmed binding is never matched");
    assert.deepEqual(r.discover({ limit: 1 }).map((p) => p.node_id), [ids[2]!.nodeId]);
    assert.equal(r.discover({}, ids[2]!.nodeId).length, 2, "the asker is left out");
    // The observed source stands in for a missing public address when it differs.
    assert.equal(r.get(ids[1]!.nodeId)!.public_address, "10.0.0.2:2");
    assert.equal(r.get(ids[0]!.nodeId)!.public_address, undefined);
    now += 55; // ids[0] is 75 s old, the others 65 and 55
    assert.deepEqual(r.discover({}).map((p) => p.node_id), [ids[2]!.nodeId]);
    assert.equal(r.size, 1);
  });

  test("a registration carrying an older signed record than the stored one only renews liveness", () => {
    let now = 1000;
    const r = new Registry({ capacity: 10, staleAfter: 60, now: () => now });
    const id = identityFromSeed(generateSeed());
    const who = {
      nodeId: id.nodeId,
      card: { publicKey: id.publicKey, name: "n", skills: [], relays: [] },
      remoteAddress: "203.0.113.9:4433",
    };
    const relay = `atlas_${"cd".repeat(32)}@198.51.100.1:4433`;
    const older = makeRecord(id, { address: "10.0.0.5:4433", relays: [], name: "n", skills: [] }, 100);
    const newer = makeRecord(id, {
      address: "203.0.113.9:4433",
      public_address: "203.0.113.9:4433",
      relays: [relay],
      name: "n",
      skills: [],
    }, 200);
    r.register(who, {
      node_id: id.nodeId,
      address: "203.0.113.9:4433",
      public_address: "203.0.113.9:4433",
      record: newer,
    });
    now += 5;
    r.register(who, { node_id: id.nodeId, address: "10.0.0.5:4433", record: older }); // overtaken in flight
    const e = r.get(id.nodeId)!;
    assert.equal(e.address, "203.0.113.9:4433");
    assert.deepEqual(e.relays, [relay], "relays come from the signed record, not the session's older Hello");
    assert.equal(e.last_seen, 1005);
  });

  test(
    "discovered records: forged, altered, replayed or unsigned never overwrite a known address",
    { timeout: 30_000 },
    async () => {
      const p = identityFromSeed(generateSeed());
      const q = identityFromSeed(generateSeed());
      const other = identityFromSeed(generateSeed());
      const rec = (id: Identity, address: string, seq: number) =>
        makeRecord(id, { address, relays: [], name: "signed-name", skills: ["s"] }, seq);
      const entry = (id: Identity, address: string, extra: Partial<PeerRecord> = {}): PeerRecord => ({
        node_id: id.nodeId,
        public_key: id.publicKey,
        address,
        relays: [],
        name: "bootstrap-says",
        skills: ["s"],
        last_seen: Math.floor(Date.now() / 1000),
        ...extra,
      });
      let answer: PeerRecord[] = [];
      const fake = await net.node({ name: "evil-directory" });
      fake.handle("BootstrapDiscover", () => Promise.resolve({ type: "BootstrapPeers", peers: answer }));
      const c = await net.node({
        name: "seeker",
        listen: false,
        configure: (cfg) => cfg.network.bootstrap.push("127.0.0.1:1"),
      });
      c.config.network.bootstrap.splice(0, 1, addrOf(fake));
      // What the seeker learnt in handshakes.
      await c.store.peers.upsert({
        node_id: p.nodeId,
        public_key: p.publicKey,
        address: "10.1.1.1:4433",
        name: "p-handshake",
      });
      await c.store.peers.upsert({
        node_id: q.nodeId,
        public_key: q.publicKey,
        address: "10.2.2.2:4433",
        name: "q-handshake",
      });

      const good = rec(p, "198.51.100.1:4433", 100);
      const altered = { data: Uint8Array.from(good.data), signature: good.signature };
      const at = Buffer.from(altered.data).indexOf("198.51.100.1");
      altered.data[at] = "9".charCodeAt(0); // 998.51… → still text, no longer what p signed
      answer = [
        entry(p, "203.0.113.66:4433", { record: altered }),
        entry(q, "203.0.113.77:4433", { record: rec(other, "203.0.113.77:4433", 500) }), // signed, but not by q
      ];
      let r = await discover(c);
      assert.deepEqual([r.peers, r.bootstraps[0]!.rejected], [[], 2]);
      assert.equal((await c.store.peers.get(p.nodeId))!.address, "10.1.1.1:4433");
      assert.equal((await c.store.peers.get(q.nodeId))!.address, "10.2.2.2:4433");

      // Unsigned: shown, but never overwrites the handshake's address or name.
      answer = [entry(q, "203.0.113.77:4433")];
      r = await discover(c);
      assert.deepEqual(r.peers.map((x) => [x.address, x.record]), [["203.0.113.77:4433", "none"]]);
      const qRow = (await c.store.peers.get(q.nodeId))!;
      assert.deepEqual([qRow.address, qRow.name, qRow.trust_level], ["10.2.2.2:4433", "q-handshake", "unknown"]);

      // A valid signed record is the node's own newer word: it sets the address (and record_seq)…
      answer = [entry(p, "203.0.113.66:4433", { record: good })];
      r = await discover(c);
      assert.deepEqual(r.peers.map((x) => [x.address, x.record, x.name]), [[
        "198.51.100.1:4433",
        "verified",
        "signed-name",
      ]]);
      let pRow = (await c.store.peers.get(p.nodeId))!;
      assert.deepEqual([pRow.address, pRow.record_seq], ["198.51.100.1:4433", 100]);
      // …once: after a handshake proves another address, the same record does not undo it,
      await c.store.peers.upsert({ node_id: p.nodeId, address: "10.1.1.1:4433" });
      r = await discover(c);
      assert.equal((await c.store.peers.get(p.nodeId))!.address, "10.1.1.1:4433");
      // and an older one (a replay) never does.
      answer = [entry(p, "203.0.113.66:4433", { record: rec(p, "203.0.113.99:4433", 50) })];
      r = await discover(c);
      pRow = (await c.store.peers.get(p.nodeId))!;
      assert.deepEqual([pRow.address, pRow.record_seq], ["10.1.1.1:4433", 100]);

      // A public key that does not hash to the node ID is refused outright.
      assert.equal(checkPeerRecord(entry(p, "203.0.113.66:4433", { public_key: q.publicKey })), null);
      // An unknown peer learnt only from discovery gets the unsigned address (nothing to protect).
      const fresh = identityFromSeed(generateSeed());
      await absorbPeer(c.store, checkPeerRecord(entry(fresh, "203.0.113.5:4433"))!);
      const fRow = (await c.store.peers.get(fresh.nodeId))!;
      assert.deepEqual([fRow.address, fRow.name, fRow.trust_level], ["203.0.113.5:4433", "bootstrap-says", "unknown"]);
    },
  );
});
