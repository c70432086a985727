/** `atlas daemon` (docs/architecture.md#daemon) through real processes: lock, control socket, status, stop, signals, keepalive. */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { appendFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { openStore } from "../src/store/index.ts";
import { cleanupHomes, initHome, killAll, type Listener, runAtlas, startListener } from "./helpers/cli.ts";
import { waitFor } from "./helpers/wait.ts";

const dbOf = (home: string) => join(home, "state", "peers.db");

/** The session rows of a home's store, opened beside its daemon (SQLite allows that). */
async function openSessionRows(home: string): Promise<number> {
  const s = await openStore(dbOf(home));
  try {
    return (await s.sessions.list({ open: true })).length;
  } finally {
    await s.close();
  }
}

after(async () => {
  killAll();
  await cleanupHomes();
});

describe("daemon lifecycle", () => {
  describe("one daemon, from start to stop", () => {
    let a: { home: string; nodeId: string };
    let d: Listener;
    const sock = () => join(a.home, "state", "daemon.sock");
    before(async () => {
      a = await initHome("alpha");
      d = await startListener(a.home, [], { cmd: ["daemon"] });
    });

    test("its control socket is private to the user (0600)", async () => {
      assert.equal((await stat(sock())).mode & 0o777, 0o600);
    });

    test("status --json names its node ID, PID and address, with no sessions and an empty outbox", async () => {
      const st = await runAtlas(["status", "--json"], { home: a.home });
      assert.equal(st.code, 0, st.stderr);
      const j = JSON.parse(st.stdout);
      assert.equal(j.running, true);
      assert.equal(j.node_id, a.nodeId);
      assert.equal(j.pid, d.proc.pid);
      assert.equal(j.listen_address, d.address);
      assert.deepEqual(j.sessions, []);
      assert.equal(j.outbox_depth, 0);
    });

    test("status for humans starts with the node ID and the daemon's PID and uptime", async () => {
      const human = await runAtlas(["status"], { home: a.home });
      assert.match(
        human.stdout,
        new RegExp(`^Node ID  : ${a.nodeId}\\nDaemon   : running \\(pid ${d.proc.pid}, up \\d+ s\\)\\n`),
      );
    });

    test("a second daemon for the home is refused naming the first one's PID", async () => {
      const second = await runAtlas(["daemon", "--host", "127.0.0.1", "--port", "0"], { home: a.home });
      assert.equal(second.code, 1);
      assert.equal(
        second.stderr,
        `error: a daemon is already running for ${a.home} (pid ${d.proc.pid}); stop it with \`atlas daemon stop\`\n`,
      );
    });

    test("daemon stop ends it with exit 0 and removes its socket and pid file", async () => {
      const stop = await runAtlas(["daemon", "stop"], { home: a.home });
      assert.equal(stop.code, 0, stop.stderr);
      assert.equal(stop.stdout, `Stopped daemon (pid ${d.proc.pid})\n`);
      assert.equal(await d.stop(), 0);
      await assert.rejects(stat(sock()), { code: "ENOENT" });
      await assert.rejects(stat(join(a.home, "state", "daemon.pid")), { code: "ENOENT" });
      const none = await runAtlas(["status", "--json"], { home: a.home });
      assert.equal(JSON.parse(none.stdout).running, false);
    });
  });

  test("after a SIGKILL the next daemon cleans the stale pid and socket and closes the left session rows as crash", async () => {
    const a = await initHome("alpha");
    const b = await initHome("beta");
    const da = await startListener(a.home, [], { cmd: ["daemon"] });
    const db = await startListener(b.home, [], { cmd: ["daemon"] });
    const c = await runAtlas(["net", "connect", da.address], { home: b.home });
    assert.equal(c.code, 0, c.stderr);
    await waitFor(
      "the inbound session row",
      async () => JSON.parse((await runAtlas(["status", "--json"], { home: a.home })).stdout).sessions.length === 1,
    );
    await waitFor(
      "the open session row, written just after the handshake",
      async () => (await openSessionRows(a.home)) === 1,
    );
    await da.stop("SIGKILL");
    const s = await openStore(dbOf(a.home));
    assert.equal((await s.sessions.list({ open: true })).length, 1, "the killed daemon left its row open");
    await s.close();
    const again = await startListener(a.home, [], { cmd: ["daemon"] });
    const s2 = await openStore(dbOf(a.home));
    try {
      const rows = await s2.sessions.list({ nodeId: b.nodeId });
      assert.equal(rows.length, 1);
      assert.equal(rows[0]!.close_reason, "crash");
    } finally {
      await s2.close();
    }
    assert.equal(await again.stop(), 0);
    assert.equal(await db.stop(), 0);
  });

  test("peer commands go through the daemon, which keeps the session they open and disconnects it on SIGTERM", async () => {
    const a = await initHome("alpha");
    const b = await initHome("beta");
    const da = await startListener(a.home, [], { cmd: ["daemon"] });
    const db = await startListener(b.home, [], { cmd: ["daemon"] });
    const c = await runAtlas(["net", "connect", da.address], { home: b.home });
    assert.equal(c.stdout, `Connected to ${a.nodeId}\nalpha [unknown via direct]\n`);
    const st = JSON.parse((await runAtlas(["status", "--json"], { home: b.home })).stdout);
    assert.equal(st.sessions.length, 1);
    assert.equal(st.sessions[0].node_id, a.nodeId);
    assert.equal(st.sessions[0].pinned, true);
    const p = await runAtlas(["net", "ping", a.nodeId.slice(0, 16), "--count", "2", "--interval", "20"], {
      home: b.home,
    });
    assert.equal(p.code, 0, p.stderr);
    assert.match(p.stdout, /2 sent, 2 received\n$/);
    const sa = await openStore(dbOf(a.home));
    assert.equal(
      (await sa.sessions.list({ nodeId: b.nodeId })).length,
      1,
      "ping reused the live session: no new session at the peer",
    );
    await sa.close();
    assert.equal(await db.stop("SIGTERM"), 0);
    await waitFor("peer to close the session", async () => {
      const s = await openStore(dbOf(a.home));
      try {
        const rows = await s.sessions.list({ nodeId: b.nodeId });
        return rows.length === 1 && rows[0]!.close_reason === "DISCONNECT_SHUTDOWN";
      } finally {
        await s.close();
      }
    });
    const sb = await openStore(dbOf(b.home));
    try {
      const rows = await sb.sessions.list({ nodeId: a.nodeId });
      assert.equal(rows[0]!.close_reason, "shutdown");
    } finally {
      await sb.close();
    }
    await da.stop();
  });

  test("a peer that stops answering is disconnected DISCONNECT_IDLE after max_missed Pings", async () => {
    const a = await initHome("alpha");
    const b = await initHome("beta");
    await appendFile(join(b.home, "state", "config.toml"), "[keepalive]\ninterval = 1\nmax_missed = 2\n");
    const da = await startListener(a.home, [], { cmd: ["daemon"] });
    const db = await startListener(b.home, [], { cmd: ["daemon"] });
    assert.equal((await runAtlas(["net", "connect", da.address], { home: b.home })).code, 0);
    da.proc.kill("SIGSTOP");
    try {
      await waitFor("DISCONNECT_IDLE", async () => {
        const s = await openStore(dbOf(b.home));
        try {
          const rows = await s.sessions.list({ nodeId: a.nodeId });
          return rows[0]?.close_reason === "DISCONNECT_IDLE";
        } finally {
          await s.close();
        }
      }, { timeoutMs: 15_000 });
    } finally {
      da.proc.kill("SIGCONT");
    }
    const s = await openStore(dbOf(b.home));
    try {
      const row = (await s.sessions.list({ nodeId: a.nodeId }))[0]!;
      assert.ok(row.missed_pongs >= 2, `missed_pongs ${row.missed_pongs}`);
    } finally {
      await s.close();
    }
    await da.stop();
    await db.stop();
  });

  test("with --log-format json every stderr line is a JSON event", async () => {
    const a = await initHome("alpha");
    const d = await startListener(a.home, ["--log-format", "json"], { cmd: ["daemon"] });
    await runAtlas(["daemon", "stop"], { home: a.home });
    await d.stop();
    const lines = d.stderr().trim().split("\n");
    assert.ok(lines.length >= 2);
    for (const l of lines) {
      const e = JSON.parse(l);
      assert.equal(typeof e.ts, "string");
      assert.equal(typeof e.msg, "string");
    }
  });

  test("a home whose socket path is over 107 bytes is refused with a clear line", async () => {
    const { tmpHome } = await import("./helpers/cli.ts");
    const base = await tmpHome();
    const home = join(base, "x".repeat(100));
    const init = await runAtlas(["id", "init"], { home });
    assert.equal(init.code, 0, init.stderr);
    const r = await runAtlas(["daemon", "--host", "127.0.0.1", "--port", "0"], { home });
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /^error: control socket path .* bytes, over the 107-byte Unix limit: use a shorter --home\n$/,
    );
  });
});
