/**
 * The programs in examples/ (README.md#library) run as they are against real daemons: the Node
 * agent on the library and the shell loop over `net inbox --follow --json` each answer an
 * `atlas net request` sent from another daemon.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { join } from "node:path";
import { atlasCommand, cleanupAll, daemonPair, ROOT, runAtlas } from "./helpers/cli.ts";
import { waitFor } from "./helpers/wait.ts";

const hasJq = spawnSync("jq", ["--version"]).status === 0;

describe("examples/ answer requests", () => {
  let a: { home: string; nodeId: string }; // asks
  let b: { home: string; nodeId: string }; // runs the example
  const procs: ChildProcess[] = [];

  before(async () => {
    ({ a, b } = await daemonPair());
  });
  after(async () => {
    for (const p of procs) {
      try {
        process.kill(-p.pid!, "SIGKILL"); // the example's whole process group
      } catch { /* already gone */ }
    }
    await cleanupAll();
  });

  /** Run `args` with beta's home; resolves once beta's daemon counts one more subscriber. */
  async function run(args: string[], env: Record<string, string> = {}): Promise<ChildProcess> {
    const before = await subscribers(b.home);
    // detached: its own process group, so the shell loop and its atlas children are stopped together.
    const p = spawn(args[0]!, args.slice(1), {
      cwd: ROOT,
      env: { ...process.env, NODE_OPTIONS: "", ATLAS_HOME: b.home, ...env },
      stdio: ["ignore", "ignore", "pipe"],
      detached: true,
    });
    procs.push(p);
    let err = "";
    p.stderr!.on("data", (d) => (err += d));
    await waitFor("the example to subscribe", async () => (await subscribers(b.home)) > before, {
      lastSeen: () => err,
    });
    return p;
  }

  /** Stop an example (its whole process group) and wait until beta's daemon has no subscriber left. */
  async function stop(p: ChildProcess): Promise<void> {
    const exited = new Promise((r) => p.once("close", r));
    process.kill(-p.pid!, "SIGTERM");
    await exited;
    await waitFor("the example's subscription to end", async () => (await subscribers(b.home)) === 0);
  }

  const request = async (body: string) => {
    const r = await runAtlas(["--json", "net", "request", b.nodeId, body, "--timeout", "20s"], { home: a.home });
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout);
  };

  test("examples/agent.ts (the library) answers atlas net request", async () => {
    const p = await run([process.execPath, "--import", "tsx", join(ROOT, "examples", "agent.ts")]);
    const j = await request('{"q":"what time is it"}');
    assert.deepEqual(j.reply.body.answer, "you asked: what time is it");
    assert.equal(j.reply.reply_to, j.request.msg_id);
    await stop(p);
  });

  test("examples/agent.ts runs under Deno too (deno run -A)", async () => {
    const p = await run([join(ROOT, "node_modules", ".bin", "deno"), "run", "-A", join(ROOT, "examples", "agent.ts")]);
    const j = await request('{"q":"from deno"}');
    assert.deepEqual(j.reply.body.answer, "you asked: from deno");
    await stop(p);
  });

  test("examples/reply-loop.sh (inbox --follow --json, send --reply-to) answers atlas net request", {
    skip: hasJq ? false : "jq is not installed",
  }, async () => {
    const [cmd, pre] = atlasCommand();
    const p = await run(["sh", join(ROOT, "examples", "reply-loop.sh")], { ATLAS: [cmd, ...pre].join(" ") });
    const j = await request('{"n":12345678901234567890}');
    assert.equal(j.reply.reply_to, j.request.msg_id);
    assert.equal(j.reply.body.by, "reply-loop.sh");
    assert.ok(JSON.stringify(j.reply.body.echo).length > 0);
    await stop(p);
  });
});

async function subscribers(home: string): Promise<number> {
  const r = await runAtlas(["--json", "status"], { home });
  return JSON.parse(r.stdout).subscribers ?? 0;
}
