/**
 * The library (README.md#library, src/index.ts) against real daemons on 127.0.0.1: attached to a
 * running daemon, or with a node started in this process; the README's example (examples/agent.ts)
 * run as its own process answers a request.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { Atlas, AtlasError, type Message } from "../src/index.ts";
import { cleanupAll, initHome, type Listener, ROOT, runAtlas, startListener } from "./helpers/cli.ts";
import { waitFor } from "./helpers/wait.ts";
import * as S from "../src/daemon/shapes.ts";
import { validate } from "../src/daemon/schema.ts";

/** Run `examples/agent.ts` for `home`; resolves once it printed its ready line. */
function startAgent(home: string): Promise<ChildProcess> {
  const p = spawn(process.execPath, ["--import", "tsx", join(ROOT, "examples", "agent.ts")], {
    cwd: ROOT,
    env: { ...process.env, NODE_OPTIONS: "", ATLAS_HOME: home },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  p.stderr!.on("data", (d) => (err += d));
  return new Promise((resolve, reject) => {
    p.on("close", (c) => reject(new Error(`the agent exited ${c}: ${err}`)));
    p.stdout!.on("data", (d) => {
      out += d;
      if (out.includes("\n")) resolve(p);
    });
  });
}

describe("the library attached to running daemons", () => {
  let a: { home: string; nodeId: string };
  let b: { home: string; nodeId: string };
  let da: Listener;
  let db: Listener;
  let atlas: Atlas;
  const agents: ChildProcess[] = [];

  before(async () => {
    a = await initHome("alpha");
    b = await initHome("beta");
    da = await startListener(a.home, [], { cmd: ["daemon"] });
    db = await startListener(b.home, [], { cmd: ["daemon"] });
    atlas = await Atlas.attach({ home: a.home });
    await atlas.connect(`${b.nodeId}@${db.address}`);
    const back = await runAtlas(["net", "connect", `${a.nodeId}@${da.address}`], { home: b.home });
    assert.equal(back.code, 0, back.stderr);
  });
  after(async () => {
    for (const p of agents) p.kill("SIGKILL");
    await atlas?.close();
    await cleanupAll();
  });

  test("the README's library example is examples/agent.ts, verbatim", async () => {
    const readme = await readFile(join(ROOT, "README.md"), "utf8");
    const example = await readFile(join(ROOT, "examples", "agent.ts"), "utf8");
    assert.ok(readme.includes("```ts\n" + example + "```"), "README.md#library shows examples/agent.ts");
  });

  test("request resolves with the reply of examples/agent.ts running on the other daemon", async () => {
    agents.push(await startAgent(b.home));
    const reply = await atlas.request(b.nodeId, { q: "six times seven" }, { timeout: 20_000 });
    assert.equal(reply.from, b.nodeId);
    assert.deepEqual((reply.body as { answer: string }).answer, "you asked: six times seven");
    agents.pop()!.kill("SIGTERM");
  });

  test("send to a peer with a live session is delivered at once; queue: true goes through the outbox", async () => {
    const now = await atlas.send(b.nodeId, { at: "once" });
    assert.deepEqual([now.queued, now.node_id, now.ack], [false, b.nodeId, "received"]);
    const queued = await atlas.send(b.nodeId, { at: "outbox" }, { queue: true });
    assert.deepEqual([queued.queued, queued.ack], [true, null]);
    const out = await runAtlas(["--json", "net", "outbox"], { home: a.home });
    const d = await waitFor("both in the deliveries", async () => {
      const j = JSON.parse((await runAtlas(["--json", "net", "outbox"], { home: a.home })).stdout);
      const ids = j.deliveries.filter((x: { status: string }) => x.status === "delivered").map((
        x: { msg_id: string },
      ) => x.msg_id);
      return ids.includes(now.msg_id) && ids.includes(queued.msg_id) && j;
    });
    assert.ok(out.code === 0 && d);
  });

  test("request rejects with ERR_TIMEOUT when no reply comes", async () => {
    await assert.rejects(
      atlas.request(b.nodeId, { q: "nobody answers" }, { timeout: 500 }),
      (e) => e instanceof AtlasError && e.code === "ERR_TIMEOUT" && e.exit === 5,
    );
  });

  test("inbox() yields what arrives, and resumes after a seq with nothing missing", async () => {
    const inbox = await atlas.inbox();
    const sent: string[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await runAtlas([
        "--json",
        "net",
        "send",
        a.nodeId,
        JSON.stringify({ i, big: "123456789012345678901234567890" }),
      ], { home: b.home });
      sent.push(JSON.parse(r.stdout).msg_id);
    }
    const got: Message[] = [];
    for await (const m of inbox) {
      got.push(m);
      if (got.length === 2) break; // leaves the loop: the subscription closes
    }
    const resumed = await atlas.inbox({ after: got[1]!.seq });
    for await (const m of resumed) {
      got.push(m);
      if (got.length === 5) break;
    }
    assert.deepEqual(got.map((m) => m.id), sent);
    assert.equal(got[0]!.body_json, '{"i":0,"big":"123456789012345678901234567890"}');
  });

  test("body_json keeps a big integer exact where body rounds it", async () => {
    const inbox = await atlas.inbox();
    await runAtlas(["net", "send", a.nodeId, '{"n":12345678901234567890123}'], { home: b.home });
    const [m] = await take(inbox, 1);
    assert.equal(m!.body_json, '{"n":12345678901234567890123}');
  });

  test("status, peers and ping answer with the shapes of docs/cli.md", async () => {
    const st = await atlas.status();
    assert.equal(st.node_id, a.nodeId);
    assert.ok(st.sessions.some((s) => s.node_id === b.nodeId));
    const peers = await atlas.peers();
    assert.ok(peers.some((p) => p.node_id === b.nodeId && p.name === "beta"));
    assert.deepEqual(peers.flatMap((p) => validate(S.PEER, p)), []);
    const ping = await atlas.ping(b.nodeId, { count: 2, interval: 10 });
    assert.equal(ping.received, 2);
    assert.deepEqual(validate(S.PING, ping), []);
  });

  test("events() tells a peer's session_up and session_down", async () => {
    const before = (await atlas.status()).subscribers!;
    const events = atlas.events();
    const seen: string[] = [];
    const c = await initHome("gamma");
    const done = (async () => {
      for await (const e of events) {
        if (e.node_id !== c.nodeId) continue;
        seen.push(e.event);
        if (e.event === "session_down") return e;
      }
    })();
    await waitFor("the events subscription", async () => (await atlas.status()).subscribers! > before);
    const r = await runAtlas(["net", "ping", `${a.nodeId}@${da.address}`], { home: c.home });
    assert.equal(r.code, 0, r.stderr);
    const down = await done;
    assert.deepEqual(seen, ["session_up", "session_down"]);
    assert.equal(down!.session, null);
  });
});

async function take<T>(it: AsyncIterable<T>, n: number): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) {
    out.push(x);
    if (out.length === n) break;
  }
  return out;
}

test("discover() lists the agents a bootstrap node knows, in the discover_result shape", async () => {
  const boot = await startListener((await initHome("boot")).home, [], { cmd: ["bootstrap"] });
  const a = await initHome("seeker");
  const b = await initHome("finder-me");
  await runAtlas(["id", "add-skill", "summarise"], { home: b.home });
  await startListener(a.home, ["--bootstrap", boot.address], { cmd: ["daemon"] });
  await startListener(b.home, ["--bootstrap", boot.address], { cmd: ["daemon"] });
  const atlas = await Atlas.attach({ home: a.home });
  try {
    const found = await waitFor("beta listed", async () => {
      const r = await atlas.discover({ skill: "summarise" });
      return r.peers.some((p) => p.node_id === b.nodeId) && r;
    });
    assert.deepEqual(validate(S.DISCOVER, found), []);
    assert.deepEqual(found.peers.map((p) => p.name), ["finder-me"]);
  } finally {
    await atlas.close();
    await cleanupAll();
  }
});

describe("the library with a node in this process", () => {
  after(cleanupAll);

  test("attach without a daemon is ERR_NOT_RUNNING with a hint", async () => {
    const h = await initHome("nobody");
    await assert.rejects(
      Atlas.attach({ home: h.home }),
      (e) => e instanceof AtlasError && e.code === "ERR_NOT_RUNNING" && /start one with `atlas daemon`/.test(e.message),
    );
  });

  test("Atlas.start runs the node here: another daemon's request is answered, and close() stops it", async () => {
    const here = await initHome("embedded");
    const there = await initHome("remote");
    const remote = await startListener(there.home, [], { cmd: ["daemon"] });
    const atlas = await Atlas.start({ home: here.home, host: "127.0.0.1", port: 0 });
    try {
      assert.equal(atlas.listening!.node_id, here.nodeId);
      const inbox = await atlas.inbox();
      const req = runAtlas(
        ["--json", "net", "request", `${here.nodeId}@${atlas.listening!.address}`, '{"q":1}', "--timeout", "20s"],
        { home: there.home },
      );
      const [m] = await take(inbox, 1);
      await atlas.reply(m!, { a: 1 });
      const r = await req;
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(JSON.parse(r.stdout).reply.body, { a: 1 });
    } finally {
      await atlas.close();
    }
    const st = await runAtlas(["--json", "status"], { home: here.home });
    assert.equal(JSON.parse(st.stdout).running, false);
    await remote.stop();
  });
});

test("plain Node imports the package's built entry (dist/index.mjs) without a TypeScript loader", () => {
  const code = "const { Atlas, AtlasError } = await import('atlas'); " +
    "console.log(typeof Atlas.attach, typeof Atlas.start, typeof AtlasError)";
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", code], {
    cwd: ROOT,
    env: { ...process.env, NODE_OPTIONS: "" },
    encoding: "utf8",
  });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, "function function function\n");
});
