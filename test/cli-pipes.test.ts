/**
 * A closed output pipe (`atlas --json net inbox | head -1`) ends a command quietly with exit 0,
 * never with a `write EPIPE` stack trace; a daemon whose output closes stops gracefully.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { openStore } from "../src/store/index.ts";
import { atlasCommand, cleanupHomes, initHome, killAll } from "./helpers/cli.ts";

/** What an unhandled write error looks like: a Node stack trace. */
const STACK = /EPIPE|Unhandled 'error'|\n\s+at /;

/**
 * Run atlas with stdout read by a reader that goes away: after the first line, or (`closeAt:
 * "start"`) before the command writes anything. Resolves with the exit code and stderr.
 */
function runWithClosingReader(
  args: string[],
  home: string,
  closeAt: "first-line" | "start" = "first-line",
): Promise<{ code: number | null; stderr: string; first: string }> {
  const [cmd, pre] = atlasCommand();
  const p = spawn(cmd, [...pre, "--home", home, ...args], {
    env: { ...process.env, NODE_OPTIONS: "" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  p.stderr.on("data", (d) => (err += d));
  if (closeAt === "start") p.stdout.destroy();
  else {
    p.stdout.on("data", (d) => {
      out += d;
      if (out.includes("\n")) p.stdout.destroy();
    });
  }
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      p.kill("SIGKILL");
      reject(new Error(`atlas ${args.join(" ")} did not exit\nstderr: ${err}`));
    }, 30_000);
    p.on("close", (code) => {
      clearTimeout(t);
      resolve({ code, stderr: err, first: out.split("\n")[0]! });
    });
  });
}

describe("closed output pipes", () => {
  let a: { home: string; nodeId: string };

  before(async () => {
    a = await initHome("alpha");
    // 100 messages of 4 KB: more than a pipe holds, so writes hit the closed pipe for sure.
    const store = await openStore(join(a.home, "state", "peers.db"));
    try {
      for (let i = 0; i < 100; i++) {
        await store.inbox.insert({
          id: `msg_${String(i).padStart(4, "0")}`,
          from_id: a.nodeId,
          to_id: a.nodeId,
          timestamp: 1_800_000_000 + i,
          body: JSON.stringify("x".repeat(4000)),
          received_at: 1_800_000_000 + i,
        });
      }
    } finally {
      await store.close();
    }
  });
  after(async () => {
    killAll();
    await cleanupHomes();
  });

  test("atlas --json net inbox into head -1 exits 0 without a stack trace", async () => {
    const r = await runWithClosingReader(["--json", "net", "inbox"], a.home);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, STACK);
    assert.equal(JSON.parse(r.first).id, "msg_0000");
  });

  test("atlas net inbox (human output) into head -1 exits 0 without a stack trace", async () => {
    const r = await runWithClosingReader(["net", "inbox"], a.home);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, STACK);
  });

  test("id show and status into a pipe closed before they write exit 0 with nothing on stderr", async () => {
    for (const args of [["id", "show"], ["status"]]) {
      const r = await runWithClosingReader(args, a.home, "start");
      assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
      assert.equal(r.stderr, "");
    }
  });

  test("a daemon whose stdout closes stops gracefully, exit 0", async () => {
    const r = await runWithClosingReader(
      ["daemon", "--host", "127.0.0.1", "--port", "0", "--json"],
      a.home,
      "start",
    );
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, STACK);
    assert.match(r.stderr, /shutting down reason=output pipe closed/);
  });
});
