/**
 * The library's kept-open control connections (src/daemon/control-pool.ts) against a real daemon:
 * consecutive calls share one connection, which is closed when idle before the daemon would close
 * it, and a connection the daemon closed is never reused.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { ControlPool } from "../src/daemon/control-pool.ts";
import { homePaths } from "../src/config/paths.ts";
import { CONTROL_POOL_IDLE_MS } from "../src/config/durations.ts";
import { cleanupAll, initHome, type Listener, startListener } from "./helpers/cli.ts";
import { waitFor } from "./helpers/wait.ts";

describe("control pool", () => {
  let home: string;
  let daemon: Listener;

  before(async () => {
    home = (await initHome("alpha")).home;
    daemon = await startListener(home, [], { cmd: ["daemon"] });
  });
  after(cleanupAll);

  test("consecutive calls share one kept connection", async () => {
    const pool = new ControlPool(homePaths(home));
    for (let i = 0; i < 20; i++) {
      const st = await pool.call<{ pid: number }>("status", {});
      assert.equal(st.pid, daemon.proc.pid);
      assert.equal(pool.idle, 1);
    }
    pool.close();
    assert.equal(pool.idle, 0);
  });

  test("calls at once open connections, and at most four wait idle", async () => {
    const pool = new ControlPool(homePaths(home));
    await Promise.all(Array.from({ length: 8 }, () => pool.call("status", {})));
    assert.equal(pool.idle, 4);
    pool.close();
  });

  test("a kept connection is closed after CONTROL_POOL_IDLE_MS idle", { timeout: 20_000 }, async () => {
    const pool = new ControlPool(homePaths(home));
    await pool.call("status", {});
    assert.equal(pool.idle, 1);
    await waitFor("the idle connection closed", () => pool.idle === 0, { timeoutMs: CONTROL_POOL_IDLE_MS + 2000 });
    assert.ok((await pool.call<{ pid: number }>("status", {})).pid > 0, "the next call opens a new one");
    pool.close();
  });

  test("an error reply keeps the connection usable; the daemon's error comes back as it was", async () => {
    const pool = new ControlPool(homePaths(home));
    await assert.rejects(pool.call("no.such.op", {}), /unknown control operation 'no.such.op'/);
    assert.equal(pool.idle, 1);
    assert.ok((await pool.call<{ pid: number }>("status", {})).pid > 0);
    pool.close();
  });
});
