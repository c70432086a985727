import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { copyFile, mkdir, mkdtemp, readFile, rm, stat, truncate, writeFile } from "node:fs/promises";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { openStore, SCHEMA_VERSION, type Store } from "../src/store/index.ts";
import { openDatabase } from "../src/store/db.ts";
import { dueSql } from "../src/store/outbox.ts";
import { SideDb } from "../src/store/side-db.ts";
import { MIGRATIONS } from "../src/store/migrations.ts";
import { PeerStore } from "../src/store/peers.ts";
import { InboxStore } from "../src/store/inbox.ts";
import { BatchWriter } from "../src/store/batch-writer.ts";
import { isAtlasError } from "../src/errors.ts";
import { pause, waitFor } from "./helpers/wait.ts";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const STORE_URL = pathToFileURL(join(ROOT, "src/store/index.ts")).href;

const id = (n: number) => "atlas_" + n.toString(16).padStart(64, "0");
const A = id(0xa);
const B = id(0xb);

let dir: string;
let n = 0;
const dbPath = () => join(dir, `t${n++}`, "peers.db");

/**
 * A fixture as a fresh file never opened by SQLite in this process. libsql finalises a closed
 * connection only at GC, so a file that was opened here could still be touched later.
 */
async function freshCopy(src: string, size?: number): Promise<string> {
  const dst = dbPath();
  await mkdir(dirname(dst), { recursive: true });
  await copyFile(src, dst);
  if (size !== undefined) await truncate(dst, size);
  return dst;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "atlas-store-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function withStore<T>(fn: (s: Store, path: string) => Promise<T>, path = dbPath()): Promise<T> {
  const s = await openStore(path);
  try {
    return await fn(s, path);
  } finally {
    await s.close();
  }
}

async function info(path: string) {
  const db = await openDatabase(path);
  try {
    return await db.info();
  } finally {
    await db.close();
  }
}

function expectStoreError(message: string | RegExp) {
  return (e: unknown) => {
    assert.ok(isAtlasError(e, "ERR_STORE"), `expected ERR_STORE, got ${String(e)}`);
    if (typeof message === "string") assert.equal(e.message, message);
    else assert.match(e.message, message);
    assert.ok(!e.message.includes("\n"), "one line");
    return true;
  };
}

describe("open and migrations", () => {
  test("a fresh open creates the current schema in WAL mode with foreign keys and private file modes", async () => {
    const path = dbPath();
    const s = await openStore(path);
    assert.equal(s.path, path);
    const closing = s.close();
    s.close(); // idempotent
    await closing;
    const i = await info(path);
    assert.equal(SCHEMA_VERSION, MIGRATIONS.length);
    assert.equal(i.user_version, SCHEMA_VERSION);
    assert.equal(i.journal_mode, "wal");
    assert.equal(i.foreign_keys, true);
    for (const t of ["peers", "sessions", "outbox", "inbox", "deliveries"]) assert.ok(i.tables.includes(t), t);
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.equal((await stat(dirname(path))).mode & 0o777, 0o700);
  });

  test("a closed store refuses calls with ERR_STORE", async () => {
    const s = await openStore(dbPath());
    void s.close(); // refused at once, before the close settles
    await assert.rejects(s.peers.get(A), expectStoreError(/is closed$/));
    // the outbox worker's polls run on the bookkeeping connection: refused too, none opened
    await assert.rejects(s.outbox.dueHeads(1, 1), expectStoreError(/is closed$/));
    await assert.rejects(s.outbox.claim(["msg_a"]), expectStoreError(/is closed$/));
  });

  test("migrating a v1 database to the current version keeps its data", async () => {
    const path = dbPath();
    const v1 = await openDatabase(path, { migrations: MIGRATIONS.slice(0, 1) });
    await new PeerStore(v1).upsert({ node_id: A, name: "alpha", skills: ["x"], address: "10.0.0.1:4433" }, 1000);
    assert.equal((await v1.info()).user_version, 1);
    assert.ok(!(await v1.info()).tables.includes("outbox"));
    await v1.close();

    await withStore(async (s) => {
      const p = await s.peers.get(A);
      assert.equal(p?.name, "alpha");
      assert.deepEqual(p?.skills, ["x"]);
      assert.equal(p?.first_seen, 1000);
      await s.outbox.enqueue({ id: "msg_1", target: A, body: "{}", created_at: 1, expires_at: 100 });
      assert.equal(await s.outbox.count(), 1);
    }, path);
    assert.equal((await info(path)).user_version, SCHEMA_VERSION);
  });

  test("a database from a newer atlas is refused and left byte-identical", async () => {
    const src = dbPath();
    const future = await openDatabase(src, {
      migrations: [
        ...MIGRATIONS,
        { version: MIGRATIONS.length + 1, name: "future", statements: ["CREATE TABLE future (x)"], tables: ["future"] },
      ],
    });
    await new PeerStore(future).upsert({ node_id: A, name: "alpha" });
    await future.close();
    const path = await freshCopy(src);
    const before = await readFile(path);
    const newer = MIGRATIONS.length + 1;
    const message =
      `database ${path} has schema version ${newer}, newer than this atlas (${SCHEMA_VERSION}): upgrade atlas`;
    await assert.rejects(openStore(path), expectStoreError(message));
    await assert.rejects(openStore(path), expectStoreError(message));
    assert.deepEqual(await readFile(path), before);
  });

  test("a file of random bytes is refused and left untouched", async () => {
    const path = dbPath();
    await mkdir(dirname(path), { recursive: true });
    const garbage = randomBytes(8192);
    garbage[0] = 0; // never the SQLite magic by chance
    await writeFile(path, garbage);
    await assert.rejects(
      openStore(path),
      expectStoreError(`database ${path} is not a valid Atlas database: file is not a database`),
    );
    assert.deepEqual(await readFile(path), garbage);
  });

  test("a truncated database is refused and left untouched", async () => {
    const src = dbPath();
    await withStore(async (s) => {
      for (let i = 0; i < 50; i++) {
        await s.peers.upsert({ node_id: id(i), name: "x".repeat(200), bio: "y".repeat(200) });
      }
    }, src);
    const full = (await stat(src)).size;
    assert.ok(full > 4096 * 4, "the fixture is checkpointed into the main file");
    for (const size of [50, 4096 * 2]) {
      const path = await freshCopy(src, size);
      const bytes = await readFile(path);
      await assert.rejects(
        openStore(path),
        expectStoreError(new RegExp(`^database ${path} is not a valid Atlas database: .+$`)),
      );
      assert.deepEqual(await readFile(path), bytes);
    }
  });

  test("an SQLite database that is not Atlas's is refused", async () => {
    const foreign = dbPath();
    const f = await openDatabase(foreign, { migrations: [] }); // a plain, unversioned SQLite file
    await f.execute("CREATE TABLE stuff (x)");
    await f.close();
    const path = await freshCopy(foreign);
    const bytes = await readFile(path);
    await assert.rejects(
      openStore(path),
      expectStoreError(
        `database ${path} is not a valid Atlas database: unversioned database already holds tables (stuff)`,
      ),
    );
    assert.deepEqual(await readFile(path), bytes);
  });

  test("data survives close and reopen", async () => {
    const path = dbPath();
    await withStore(async (s) => {
      await s.peers.upsert({ node_id: A, name: "alpha", public_key: new Uint8Array(32).fill(7) }, 10);
      await s.inbox.insert({ id: "msg_1", from_id: A, to_id: B, timestamp: 5, body: '"hi"', received_at: 6 });
    }, path);
    await withStore(async (s) => {
      const p = await s.peers.get(A);
      assert.equal(p?.name, "alpha");
      assert.deepEqual(p?.public_key, new Uint8Array(32).fill(7));
      assert.equal((await s.inbox.list()).length, 1);
      assert.equal(
        await s.inbox.insert({ id: "msg_1", from_id: A, to_id: B, timestamp: 5, body: '"hi"', received_at: 7 }),
        false,
      );
    }, path);
  });
});

describe("peers", () => {
  test("upsert is non-destructive and first_seen is stable", async () => {
    await withStore(async (s) => {
      await s.peers.upsert(
        {
          node_id: A,
          name: "alpha",
          skills: ["search", "code"],
          address: "10.0.0.1:4433",
          relays: ["r:1"],
          last_seen: 100,
        },
        100,
      );
      let p = await s.peers.get(A);
      assert.ok(p);
      assert.equal(p.first_seen, 100);
      assert.equal(p.last_seen, 100);
      assert.equal(p.trust_level, "unknown");
      assert.equal(p.violations, 0);
      assert.equal(p.public_key, null);

      await s.peers.upsert({
        node_id: A,
        name: null,
        skills: [],
        address: undefined,
        bio: "",
        relays: [],
        last_seen: 200,
      }, 200);
      p = await s.peers.get(A);
      assert.ok(p);
      assert.equal(p.name, "alpha");
      assert.deepEqual(p.skills, ["search", "code"]);
      assert.equal(p.address, "10.0.0.1:4433");
      assert.deepEqual(p.relays, ["r:1"]);
      assert.equal(p.bio, null);
      assert.equal(p.first_seen, 100);
      assert.equal(p.last_seen, 200);

      // without last_seen, last_seen does not move; older last_seen never moves it back
      await s.peers.upsert({ node_id: A, name: "alpha2" }, 300);
      await s.peers.upsert({ node_id: A, last_seen: 150 }, 300);
      p = await s.peers.get(A);
      assert.equal(p?.last_seen, 200);
      assert.equal(p?.first_seen, 100);
      assert.equal(p?.name, "alpha2");

      await s.peers.upsert({
        node_id: A,
        skills: ["new"],
        address: "10.0.0.2:1",
        trust_level: "verified",
        operator_fid: 42,
        record_seq: 5,
      });
      await s.peers.upsert({ node_id: A, record_seq: 3 });
      p = await s.peers.get(A);
      assert.deepEqual(p?.skills, ["new"]);
      assert.equal(p?.address, "10.0.0.2:1");
      assert.equal(p?.trust_level, "verified");
      assert.equal(p?.operator_fid, 42);
      assert.equal(p?.record_seq, 5);
      assert.equal(typeof p?.first_seen, "number");
    });
  });

  test("peers list newest seen first and filter by trust and skill", async () => {
    await withStore(async (s) => {
      assert.equal(await s.peers.get(A), null);
      await s.peers.upsert({ node_id: A, skills: ["search"], trust_level: "relay", last_seen: 10 });
      await s.peers.upsert({ node_id: B, skills: ["code", "Search2"], last_seen: 20 });
      assert.deepEqual((await s.peers.list()).map((p) => p.node_id), [B, A]);
      assert.deepEqual((await s.peers.list({ trust: "relay" })).map((p) => p.node_id), [A]);
      assert.deepEqual((await s.peers.list({ skill: "search" })).map((p) => p.node_id), [A]);
      assert.deepEqual((await s.peers.list({ skill: "code", trust: "unknown" })).map((p) => p.node_id), [B]);
      assert.deepEqual(await s.peers.allIds(), [A, B]);
    });
  });

  test("a failure is recorded on a known peer until cleared, and ignored for an unknown one", async () => {
    await withStore(async (s) => {
      await s.peers.recordFailure(A, "unreachable", 50); // unknown peer: no-op
      assert.equal(await s.peers.get(A), null);
      await s.peers.upsert({ node_id: A, name: "alpha" });
      await s.peers.recordFailure(A, "rejected", 60);
      let p = await s.peers.get(A);
      assert.equal(p?.last_failure, "rejected");
      assert.equal(p?.last_failure_at, 60);
      await s.peers.upsert({ node_id: A, name: "beta" }); // an upsert does not clear it
      assert.equal((await s.peers.get(A))?.last_failure, "rejected");
      await s.peers.clearFailure(A);
      p = await s.peers.get(A);
      assert.equal(p?.last_failure, null);
      assert.equal(p?.last_failure_at, null);
      assert.equal(p?.name, "beta");
    });
  });

  test("a ban on an unknown peer creates a minimal row holding it", async () => {
    await withStore(async (s) => {
      await s.peers.setBan(A, 5000);
      const p = await s.peers.get(A);
      assert.equal(p?.ban_until, 5000);
      assert.equal(p?.name, null);
    });
  });

  test("an upsert keeps the ban and the violation count", async () => {
    await withStore(async (s) => {
      await s.peers.setBan(A, 5000);
      await s.peers.setViolations(A, 3);
      await s.peers.upsert({ node_id: A, name: "alpha" });
      const p = await s.peers.get(A);
      assert.equal(p?.violations, 3);
      assert.equal(p?.ban_until, 5000);
    });
  });

  test("lifting a ban clears the violations and keeps the rest of the row", async () => {
    await withStore(async (s) => {
      await s.peers.upsert({ node_id: A, name: "alpha" });
      await s.peers.setBan(A, 5000);
      await s.peers.setViolations(A, 3);
      await s.peers.setBan(A, null);
      const p = await s.peers.get(A);
      assert.equal(p?.ban_until, null);
      assert.equal(p?.violations, 0);
      assert.equal(p?.name, "alpha");
    });
  });

  test("lifting the ban of an unknown peer creates nothing", async () => {
    await withStore(async (s) => {
      await s.peers.setBan(B, null);
      assert.equal(await s.peers.get(B), null);
    });
  });

  test("a value the schema forbids surfaces as ERR_STORE", async () => {
    await withStore(async (s) => {
      await assert.rejects(
        s.peers.upsert({ node_id: A, trust_level: "bogus" as "unknown" }),
        expectStoreError(/^database .*: .*CHECK constraint failed/),
      );
    });
  });
});

describe("sessions", () => {
  const base = {
    direction: "outbound",
    path: "direct",
    relay: null,
    remote_address: "10.0.0.1:4433",
    protocol_v: 1,
    trust_level: "unknown",
  } as const;

  const relayed = { path: "relay", relay: "atlas_r@1.2.3.4:1" } as const;

  test("opening sessions numbers them in order and creates a minimal peer row", async () => {
    await withStore(async (s) => {
      const s1 = await s.sessions.open({ ...base, node_id: A, connected_at: 100 });
      const s2 = await s.sessions.open({ ...base, ...relayed, node_id: B, connected_at: 110 });
      const s3 = await s.sessions.open({ ...base, node_id: B, connected_at: 120, direction: "inbound" });
      assert.ok(s1 > 0 && s2 > s1 && s3 > s2);
      assert.ok(await s.peers.get(B), "a session creates a minimal peer row");
      const row = (await s.sessions.list({ nodeId: B })).find((x) => x.id === s2);
      assert.equal(row?.path, "relay");
      assert.equal(row?.relay, "atlas_r@1.2.3.4:1");
    });
  });

  test("a Pong clears the missed count and records its time", async () => {
    await withStore(async (s) => {
      const id = await s.sessions.open({ ...base, node_id: A, connected_at: 100 });
      await s.sessions.missed(id, 2);
      assert.equal((await s.sessions.list({ nodeId: A }))[0]?.missed_pongs, 2);
      await s.sessions.pong(id, 130);
      const r = (await s.sessions.list({ nodeId: A }))[0];
      assert.equal(r?.missed_pongs, 0);
      assert.equal(r?.last_pong_at, 130);
      assert.equal(r?.closed_at, null);
    });
  });

  test("closing a session twice keeps the first close time and reason", async () => {
    await withStore(async (s) => {
      const id = await s.sessions.open({ ...base, node_id: A, connected_at: 100 });
      await s.sessions.close(id, "cli_exit", 140);
      await s.sessions.close(id, "other", 150);
      const r = (await s.sessions.list({ nodeId: A }))[0];
      assert.equal(r?.closed_at, 140);
      assert.equal(r?.close_reason, "cli_exit");
    });
  });

  test("list filters open and closed sessions, newest first", async () => {
    await withStore(async (s) => {
      const s1 = await s.sessions.open({ ...base, node_id: A, connected_at: 100 });
      const s2 = await s.sessions.open({ ...base, ...relayed, node_id: B, connected_at: 110 });
      const s3 = await s.sessions.open({ ...base, node_id: B, connected_at: 120, direction: "inbound" });
      await s.sessions.close(s1, "cli_exit", 140);
      assert.deepEqual((await s.sessions.list({ open: true })).map((x) => x.id), [s3, s2]);
      assert.deepEqual((await s.sessions.list({ open: false })).map((x) => x.id), [s1]);
      assert.equal((await s.sessions.list()).length, 3);
    });
  });

  test("closeForPeer closes every open session of the peer once", async () => {
    await withStore(async (s) => {
      await s.sessions.open({ ...base, ...relayed, node_id: B, connected_at: 110 });
      await s.sessions.open({ ...base, node_id: B, connected_at: 120, direction: "inbound" });
      assert.equal(await s.sessions.closeForPeer(B, "DISCONNECT_SHUTDOWN", 160), 2);
      assert.equal(await s.sessions.closeForPeer(B, "again", 170), 0);
      assert.equal((await s.sessions.list({ open: true })).length, 0);
    });
  });

  test("session bookkeeping is written behind: writes within the linger are one batch, all of it there after close", async () => {
    const path = dbPath();
    const peers = Array.from({ length: 20 }, (_, i) => id(0x100 + i));
    await withStore(async (s) => {
      const before = s.sessionBatches;
      // Twenty sessions opened in one turn: one commit.
      const ids = await Promise.all(peers.map((p, i) =>
        s.recordSessionOpen(
          { node_id: p, name: `p${i}`, trust_level: "unknown", last_seen: 100 },
          { ...base, node_id: p, connected_at: 100 },
          100,
        )
      ));
      assert.equal(s.sessionBatches, before + 1, "one batch for the twenty opens");
      assert.equal(new Set(ids).size, 20, "distinct session IDs");
      assert.equal((await s.sessions.list({ open: true })).length, 20, "the rows are visible to the main connection");
      // Closes queued and not awaited: close() commits them before it returns.
      for (const [i, sid] of ids.entries()) void s.recordSessionClose(sid, peers[i]!, "shutdown", 200);
    }, path);
    await withStore(async (s) => {
      const rows = await s.sessions.list();
      assert.equal(rows.length, 20);
      for (const r of rows) {
        assert.equal(r.closed_at, 200, `session ${r.id} closed`);
        assert.equal(r.close_reason, "shutdown");
      }
      assert.equal((await s.peers.get(peers[0]!))?.last_seen, 200, "the close's peer update landed too");
    }, path);
  });

  test("session opens a few turns apart, within the linger, are committed as one batch", async () => {
    await withStore(async (s) => {
      const before = s.sessionBatches;
      const open = (n: number) =>
        s.recordSessionOpen({ node_id: id(n), last_seen: 100 }, { ...base, node_id: id(n), connected_at: 100 }, 100);
      const first = open(0x200);
      for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
      await Promise.all([first, open(0x201)]);
      assert.equal(s.sessionBatches, before + 1);
    });
  });

  test("session rows go through a connection without fsync, messages through one with FULL; the main one stays FULL", async () => {
    const path = dbPath();
    await withStore(async () => {}, path);
    const main = await openDatabase(path);
    const side = await SideDb.open(path);
    const durable = await SideDb.open(path, { synchronous: "FULL" });
    try {
      assert.equal(Number((await main.rows("PRAGMA synchronous"))[0]?.[0]), 2, "main: FULL");
      assert.equal(Number(side.pragma("synchronous")), 1, "session writer: NORMAL");
      assert.equal(Number(durable.pragma("synchronous")), 2, "messages writer: FULL");
      for (const c of [side, durable]) {
        assert.equal(Number(c.pragma("foreign_keys")), 1, "foreign keys on");
        assert.equal(Number(c.pragma("busy_timeout")), 5000, "busy timeout");
      }
    } finally {
      await durable.close();
      await side.close();
      await main.close();
    }
  });

  test("a failing session write fails alone, the rest of its batch commits", async () => {
    await withStore(async (s) => {
      const good = s.recordSessionOpen(
        { node_id: A, trust_level: "unknown", last_seen: 100 },
        { ...base, node_id: A, connected_at: 100 },
        100,
      );
      const bad = s.recordSessionOpen(
        { node_id: B, trust_level: "unknown", last_seen: 100 },
        // direction violates the table's CHECK constraint
        { ...base, node_id: B, connected_at: 100, direction: "sideways" as "inbound" },
        100,
      );
      const [g, b] = await Promise.allSettled([good, bad]);
      assert.equal(g.status, "fulfilled");
      assert.equal(b.status, "rejected");
      assert.ok(b.status === "rejected" && isAtlasError(b.reason, "ERR_STORE"), "ERR_STORE");
      assert.equal((await s.sessions.list()).length, 1);
    });
  });

  test("crash recovery closes sessions left open", async () => {
    const path = dbPath();
    const ids = await withStore(async (s) => [
      await s.sessions.open({ ...base, node_id: A, connected_at: 100 }),
      await s.sessions.open({ ...base, node_id: B, connected_at: 100 }),
    ], path);
    await withStore(async (s) => {
      assert.equal((await s.sessions.list({ open: true })).length, 2);
      assert.equal(await s.sessions.closeAllOpen("crash", 500), 2);
      assert.equal(await s.sessions.closeAllOpen("crash", 600), 0);
      for (const r of await s.sessions.list()) {
        assert.ok(ids.includes(r.id));
        assert.equal(r.close_reason, "crash");
        assert.equal(r.closed_at, 500);
      }
    }, path);
  });
});

describe("messages", () => {
  test("inbox inserts of one turn are one commit, in stream order per session, trimmed once per sender", async () => {
    await withStore(async (s) => {
      const session = {};
      const msg = (n: number) => ({
        id: `msg_${n}`,
        from_id: A,
        to_id: B,
        timestamp: 10,
        body: String(n),
        received_at: 11,
      });
      // queued in the order 3, 1, 2 with stream IDs 12, 4, 8: stored as 1, 2, 3; keep 2 per sender
      const results = await Promise.all(
        [3, 1, 2].map((n) => s.inbox.insertAndTrim(msg(n), 2, { group: session, n: n * 4 })),
      );
      assert.ok(results.every((r) => r.seq !== null));
      assert.deepEqual(
        results.map((r) => r.seq! - Math.min(...results.map((x) => x.seq!))),
        [2, 0, 1],
        "seq in stream order",
      );
      assert.deepEqual(results.map((r) => r.pruned), [1, 1, 1], "one trim for the batch, its result shared");
      assert.deepEqual((await s.inbox.list()).map((r) => r.id), ["msg_2", "msg_3"]);
    });
  });

  test("inbox stores a message once, lists with filters and a cursor", async () => {
    await withStore(async (s) => {
      const m = { id: "msg_1", from_id: A, to_id: B, timestamp: 10, body: '{"a":1}', received_at: 11 };
      assert.equal(await s.inbox.insert(m), true);
      assert.equal(await s.inbox.insert({ ...m, body: '"changed"', received_at: 12 }), false);
      const rows = await s.inbox.list();
      assert.equal(rows.length, 1);
      assert.equal(rows[0]?.body, '{"a":1}');
      assert.equal(rows[0]?.topic, null);
      // same message id from another sender is a different message
      assert.equal(await s.inbox.insert({ ...m, from_id: B, topic: "t" }), true);
      assert.equal(await s.inbox.insert({ ...m, id: "msg_2", topic: "t" }), true);
      const all = await s.inbox.list();
      assert.deepEqual(all.map((r) => [r.from_id, r.id]), [[A, "msg_1"], [B, "msg_1"], [A, "msg_2"]]);
      assert.deepEqual((await s.inbox.list({ from: A })).map((r) => r.id), ["msg_1", "msg_2"]);
      assert.deepEqual((await s.inbox.list({ topic: "t" })).map((r) => r.from_id), [B, A]);
      assert.deepEqual((await s.inbox.list({ sinceRowid: all[0]!.rowid })).map((r) => r.rowid), [
        all[1]!.rowid,
        all[2]!.rowid,
      ]);
      assert.deepEqual((await s.inbox.list({ limit: 2 })).map((r) => r.rowid), [all[1]!.rowid, all[2]!.rowid]);
      assert.deepEqual((await s.inbox.list({ sinceRowid: 0, limit: 1 })).map((r) => r.rowid), [all[0]!.rowid]);
    });
  });

  test("an outbox row is due, counts its attempts and becomes a delivery in one transaction", async () => {
    await withStore(async (s) => {
      await s.outbox.enqueue({ id: "msg_a", target: A, body: "{}", created_at: 100, expires_at: 1000 });
      await s.outbox.enqueue({
        id: "msg_b",
        target: B,
        topic: "t",
        body: "[]",
        created_at: 101,
        expires_at: 1000,
        next_attempt_at: 200,
      });
      await assert.rejects(
        s.outbox.enqueue({ id: "msg_a", target: A, body: "{}", created_at: 1, expires_at: 2 }),
        expectStoreError(/UNIQUE/),
      );
      assert.deepEqual((await s.outbox.due(150, 10)).map((m) => m.id), ["msg_a"]);
      assert.deepEqual((await s.outbox.due(300, 10)).map((m) => m.id), ["msg_a", "msg_b"]);
      assert.deepEqual((await s.outbox.due(300, 1)).map((m) => m.id), ["msg_a"]);

      assert.equal(await s.outbox.markDelivering("msg_a"), true);
      assert.equal(await s.outbox.markDelivering("msg_a"), false);
      assert.deepEqual((await s.outbox.due(300, 10)).map((m) => m.id), ["msg_b"]);
      await s.outbox.markAttempt("msg_a", 400);
      const a = await s.outbox.get("msg_a");
      assert.equal(a?.attempts, 1);
      assert.equal(a?.status, "queued");
      assert.equal(a?.next_attempt_at, 400);

      assert.equal(await s.outbox.complete("msg_a", { status: "delivered", finished_at: 401, path: "direct" }), true);
      assert.equal(await s.outbox.complete("msg_a", { status: "delivered", finished_at: 402 }), false);
      assert.equal(await s.outbox.get("msg_a"), null);
      await s.outbox.markDelivering("msg_b");
      assert.equal(await s.outbox.requeueDelivering(), 1);
      assert.equal(await s.outbox.complete("msg_b", { status: "expired", finished_at: 1001, detail: "ttl" }), true);
      assert.equal(await s.outbox.count(), 0);

      const d = await s.deliveries.list();
      assert.deepEqual(d.map((x) => [x.msg_id, x.status, x.attempts, x.path, x.detail]), [
        ["msg_b", "expired", 0, null, "ttl"],
        ["msg_a", "delivered", 2, "direct", null],
      ]);
      const id3 = await s.deliveries.record({
        msg_id: "msg_c",
        target: A,
        status: "failed",
        attempts: 1,
        finished_at: 2000,
        detail: "banned",
      });
      assert.ok(id3 > 0);
      assert.deepEqual((await s.deliveries.list({ msgId: "msg_c" })).map((x) => x.id), [id3]);
      assert.equal((await s.deliveries.list({ target: A })).length, 2);
      assert.equal((await s.deliveries.list({ limit: 1 }))[0]?.msg_id, "msg_c");
      assert.equal(await s.outbox.remove("nope"), false);
    });
  });
  test("the inbox trim keeps exactly the newest per sender, counting rows a migration found and rows deleted elsewhere", async () => {
    const path = dbPath();
    const msg = (from: string, n: number) => ({
      id: `msg_${n}`,
      from_id: from,
      to_id: B,
      timestamp: 10,
      body: String(n),
      received_at: 11,
    });
    // a v4 database (before inbox_counts) already holding 4 messages from A and 1 from B
    const v4 = await openDatabase(path, { migrations: MIGRATIONS.slice(0, 4) });
    const old = new InboxStore(v4, new BatchWriter(() => Promise.resolve(v4)));
    for (const n of [1, 2, 3, 4]) await old.insert(msg(A, n));
    await old.insert(msg(B, 1));
    await v4.close();
    await withStore(async (s) => {
      const ids = async (from: string) => (await s.inbox.list({ from })).map((r) => r.id).sort();
      assert.equal((await s.inbox.insertAndTrim(msg(A, 5), 5)).pruned, 0, "5 of 5: nothing to trim");
      assert.equal((await s.inbox.insertAndTrim(msg(A, 6), 5)).pruned, 1, "the oldest goes");
      assert.deepEqual(await ids(A), ["msg_2", "msg_3", "msg_4", "msg_5", "msg_6"]);
      // another process (or the retention sweep) deletes two of A's: the count follows
      const other = await openDatabase(path);
      await other.execute("DELETE FROM inbox WHERE from_id = ? AND id IN ('msg_2', 'msg_3')", [A]);
      await other.close();
      assert.equal((await s.inbox.insertAndTrim(msg(A, 7), 5)).pruned, 0, "4 of 5 after the deletion");
      assert.deepEqual(await ids(A), ["msg_4", "msg_5", "msg_6", "msg_7"]);
      assert.equal((await s.inbox.insertAndTrim(msg(A, 7), 5)).pruned, 0, "a re-delivery is not counted");
      assert.equal(await s.inbox.pruneExcess(1, A), 3);
      assert.deepEqual(await ids(A), ["msg_7"]);
      assert.deepEqual(await ids(B), ["msg_1"], "other senders untouched");
    }, path);
  });

  test("due rows come in queue order off the outbox_due index, without sorting the backlog", async () => {
    const path = dbPath();
    await withStore(async (s) => {
      for (const id of ["msg_c", "msg_a", "msg_d", "msg_b"]) {
        await s.outbox.enqueue({ id, target: A, body: "{}", created_at: 100, expires_at: 1000 });
      }
      await s.outbox.enqueue({ id: "msg_0", target: A, body: "{}", created_at: 101, expires_at: 1000 });
      assert.deepEqual((await s.outbox.dueHeads(150, 10)).map((m) => m.id), [
        "msg_a",
        "msg_b",
        "msg_c",
        "msg_d",
        "msg_0",
      ]);
      const db = await openDatabase(path);
      try {
        const plan = (await db.rows(`EXPLAIN QUERY PLAN ${dueSql("id")}`, [150, 10])).map((r) => String(r.detail));
        assert.ok(plan.some((d) => /USING (COVERING )?INDEX outbox_due/.test(d)), plan.join("; "));
        assert.ok(!plan.some((d) => d.includes("TEMP B-TREE")), `a sort per poll: ${plan.join("; ")}`);
      } finally {
        await db.close();
      }
    }, path);
  });
});

describe("process lifetime", () => {
  function runChild(code: string, timeoutMs: number) {
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.on("exit", (code, signal) => resolve({ code, signal }))
    );
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    void exited.then(() => clearTimeout(timer));
    return { child, exited, out: () => out, err: () => err };
  }

  test("close() releases every handle, so a child process exits by itself", async () => {
    const path = dbPath();
    const c = runChild(
      `const { openStore } = await import(${JSON.stringify(STORE_URL)});
       const s = await openStore(${JSON.stringify(path)});
       await s.peers.upsert({ node_id: ${JSON.stringify(A)}, name: "alpha" });
       await s.close();
       console.log("closed");`,
      8000,
    );
    const r = await c.exited;
    assert.equal(r.signal, null, `child hung: ${c.err()}`);
    assert.equal(r.code, 0, c.err());
    assert.equal(c.out().trim(), "closed");
    await withStore(async (s) => assert.equal((await s.peers.get(A))?.name, "alpha"), path);
  });

  test("SIGKILL mid-write loses no committed row and the database opens", async () => {
    const path = dbPath();
    await withStore(async () => {}, path);
    const c = runChild(
      `const { openStore } = await import(${JSON.stringify(STORE_URL)});
       const s = await openStore(${JSON.stringify(path)});
       const id = (n) => "atlas_" + n.toString(16).padStart(64, "0");
       for (let i = 0; ; i++) {
         await s.peers.upsert({ node_id: id(i), name: "n" + i, skills: ["s" + i], last_seen: 1000 + i });
         await s.inbox.insert({ id: "msg_" + i, from_id: id(i), to_id: "me", timestamp: i, body: JSON.stringify({ i }), received_at: i });
         await s.sessions.open({ node_id: id(i), direction: "inbound", path: "direct", relay: null, remote_address: null, protocol_v: 1, trust_level: "unknown", connected_at: i });
         process.stdout.write(i + "\\n");
       }`,
      10000,
    );
    // Kill once the child has committed a fair number of rows (or after a bound).
    const committed = () => c.out().split("\n").length > 150 || c.child.exitCode !== null;
    await waitFor("150 committed rows", committed, { timeoutMs: 6000, intervalMs: 10 }).catch(() => {});
    await pause(Math.floor(Math.random() * 20)); // the kill lands at a random moment
    c.child.kill("SIGKILL");
    const r = await c.exited;
    assert.equal(r.signal, "SIGKILL", `child ended early: ${c.err()}`);
    const reported = c.out().split("\n").filter((l) => /^\d+$/.test(l)).map(Number);
    assert.ok(reported.length > 10, `child reported only ${reported.length} rows: ${c.err()}`);
    const last = reported[reported.length - 1]!;

    await withStore(async (s) => {
      const ids = new Set(await s.peers.allIds());
      const inbox = new Set((await s.inbox.list()).map((m) => m.id));
      const sessions = await s.sessions.list();
      const sessionPeers = new Set(sessions.map((x) => x.node_id));
      for (let i = 0; i <= last; i++) {
        assert.ok(ids.has(id(i)), `peer ${i} lost`);
        assert.ok(inbox.has("msg_" + i), `inbox ${i} lost`);
        assert.ok(sessionPeers.has(id(i)), `session ${i} lost`);
      }
      const p = await s.peers.get(id(last));
      assert.equal(p?.name, "n" + last);
      assert.deepEqual(p?.skills, ["s" + last]);
      assert.equal(await s.sessions.closeAllOpen("crash", 99), sessions.filter((x) => x.closed_at === null).length);
    }, path);
  });
});
