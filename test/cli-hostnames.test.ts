/**
 * Host names (issue 13): targets resolve to every A/AAAA address, tried Happy-Eyeballs style;
 * `--host` binds the first address of a name and says which; peer rows keep IPs only.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { isIP } from "node:net";
import { openStore } from "../src/store/index.ts";
import { interleave } from "../src/transport/resolve.ts";
import { cleanupAll, type Listener, listenerPair, runAtlas } from "./helpers/cli.ts";

/** `127.0.0.1` of `127.0.0.1:4433`, `::1` of `[::1]:4433`. */
const hostOf = (addr: string) => addr.replace(/^\[(.*)\]:\d+$/, "$1").replace(/^([^:]*):\d+$/, "$1");

test("resolved addresses are tried first family first, then alternating (RFC 8305)", () => {
  assert.deepEqual(interleave(["::1", "fe80::1", "127.0.0.1"]), ["::1", "127.0.0.1", "fe80::1"]);
  assert.deepEqual(interleave(["10.0.0.1", "10.0.0.2", "::1"]), ["10.0.0.1", "::1", "10.0.0.2"]);
  assert.deepEqual(interleave([]), []);
});

describe("host names", () => {
  let a: { home: string; nodeId: string };
  let b: { home: string; nodeId: string };
  let listener: Listener;

  // The helper binds 127.0.0.1; the later --host wins.
  before(async () => ({ a, b, listener } = await listenerPair(["--host", "localhost"])));
  after(cleanupAll);

  test("`daemon --host localhost` binds the first address localhost resolves to, and says so", () => {
    const host = hostOf(listener.address);
    assert.ok(host === "127.0.0.1" || host === "::1", listener.address);
    assert.ok(listener.stderr().includes(`--host localhost resolved to ${host}`), listener.stderr());
  });

  test("net ping localhost:<port> reaches the daemon and stores its IP, not the name", async () => {
    const r = await runAtlas(["net", "ping", `localhost:${listener.port}`], { home: b.home });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.split("\n")[0], `Peer : ${a.nodeId.slice(0, 18)}…`);
    const store = await openStore(join(b.home, "state", "peers.db"));
    try {
      const row = await store.peers.get(a.nodeId);
      assert.equal(row?.address, listener.address);
      assert.notEqual(isIP(hostOf(row!.address!)), 0);
    } finally {
      await store.close();
    }
  });

  test("a pinned atlas_<id>@localhost:<port> target", async () => {
    const r = await runAtlas(["--json", "net", "ping", `${a.nodeId}@localhost:${listener.port}`], { home: b.home });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).node_id, a.nodeId);
  });

  test("a name that does not resolve exits 3 as a target and 2 as --host", async () => {
    const r = await runAtlas(["net", "ping", "no-such-host.invalid:4433"], { home: b.home });
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /^error: cannot resolve host 'no-such-host\.invalid'/);
    const d = await runAtlas(["daemon", "--host", "no-such-host.invalid", "--port", "0"], { home: b.home });
    assert.equal(d.code, 2, d.stderr);
    assert.match(d.stderr, /^error: invalid --host 'no-such-host\.invalid'/);
  });
});
