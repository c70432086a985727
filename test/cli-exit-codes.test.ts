/**
 * The exit-code table (README, docs/errors.md) made true: one test per exit code through the real
 * CLI and real daemons on 127.0.0.1, with the JSON error code beside it, and the precedence rule
 * for a dial that tried several paths (docs/decisions.md, "Exit-code precedence").
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { AtlasError, remoteCodeName } from "../src/errors.ts";
import { pickError } from "../src/net/dial.ts";
import { openStore } from "../src/store/index.ts";
import { cleanupAll, initHome, listenerPair, runAtlas, startListener, tmpHome } from "./helpers/cli.ts";

after(cleanupAll);

const dbOf = (home: string) => join(home, "state", "peers.db");
const jsonError = (stderr: string) => JSON.parse(stderr).error as { code: string; message: string };

/** A UDP port that swallows everything: a candidate that never answers. */
async function blackHole(): Promise<{ addr: string; close: () => void }> {
  const s = createSocket("udp4");
  await new Promise<void>((r) => s.bind(0, "127.0.0.1", () => r()));
  return { addr: `127.0.0.1:${s.address().port}`, close: () => s.close() };
}

async function withStore(home: string, fn: (s: Awaited<ReturnType<typeof openStore>>) => Promise<unknown>) {
  const s = await openStore(dbOf(home));
  try {
    await fn(s);
  } finally {
    await s.close();
  }
}

test("exit 0: a ping that got its Pong", async () => {
  const { b, listener } = await listenerPair();
  const r = await runAtlas(["net", "ping", listener.address], { home: b.home });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, "");
});

test("exit 1: daemon stop without a daemon is ERR_NOT_RUNNING", async () => {
  const a = await initHome("alpha");
  const r = await runAtlas(["daemon", "stop"], { home: a.home });
  assert.equal(r.code, 1);
  assert.equal(r.stderr, `error: no daemon is running for ${a.home}\n`);
  const j = await runAtlas(["daemon", "stop", "--json"], { home: a.home });
  assert.equal(j.code, 1);
  assert.equal(jsonError(j.stderr).code, "ERR_NOT_RUNNING");
});

test("exit 2: bad --host and --port values are usage errors", async () => {
  const a = await initHome("alpha");
  for (const flags of [["--host", "999.1.1.1"], ["--port", "70000"]]) {
    const r = await runAtlas(["daemon", ...flags, "--json"], { home: a.home });
    assert.equal(r.code, 2, `${flags.join(" ")}: ${r.stderr}`);
    assert.equal(jsonError(r.stderr).code, "ERR_USAGE");
  }
});

test("exit 2: a dial to this node itself is refused with one line, by node ID or by address", async () => {
  const a = await initHome("alpha");
  const d = await startListener(a.home, [], { cmd: ["daemon"] });
  const byId = await runAtlas(["net", "ping", a.nodeId], { home: a.home });
  assert.equal(byId.code, 2);
  assert.equal(byId.stderr, `error: ${a.nodeId} is this node itself\n`);
  const byAddr = await runAtlas(["--json", "net", "connect", d.address], { home: a.home });
  assert.equal(byAddr.code, 2);
  assert.deepEqual(jsonError(byAddr.stderr), { code: "ERR_USAGE", message: `${d.address} is this node's own address` });
  await d.stop();
});

test("exit 2: a dial to an address this node advertises (a wildcard bind's interface address) is refused", async (t) => {
  const a = await initHome("alpha");
  const d = await startListener(a.home, ["--host", "0.0.0.0"], { cmd: ["daemon"] });
  const own = JSON.parse((await runAtlas(["--json", "status"], { home: a.home })).stdout).listen_addrs as string[];
  if (own.length === 0) return t.skip("this host has no non-internal interface address");
  const r = await runAtlas(["net", "ping", own[0]!], { home: a.home });
  assert.equal(r.code, 2);
  assert.equal(r.stderr, `error: ${own[0]} is this node's own address\n`);
  await d.stop();
});

test("exit 3: no answer at all is ERR_UNREACHABLE", async () => {
  const b = await initHome("beta");
  const hole = await blackHole();
  await runAtlas(["config", "set", "transport.dial_timeout", "1"], { home: b.home });
  const r = await runAtlas(["--json", "net", "ping", hole.addr], { home: b.home });
  hole.close();
  assert.equal(r.code, 3);
  assert.deepEqual(jsonError(r.stderr), { code: "ERR_UNREACHABLE", message: `no answer from ${hole.addr} within 1 s` });
});

test("exit 4: a ban is ERR_BANNED here (4001 on the wire), even when a silent candidate was tried too", async () => {
  const a = await initHome("alpha");
  const b = await initHome("beta");
  await withStore(a.home, (s) => s.peers.setBan(b.nodeId, Math.floor(Date.now() / 1000) + 600));
  const l = await startListener(a.home);
  const hole = await blackHole();
  // Two candidates: one swallows everything, the other refuses us. The refusal decides.
  await withStore(b.home, (s) => s.peers.upsert({ node_id: a.nodeId, address: hole.addr, public_address: l.address }));
  await runAtlas(["config", "set", "transport.dial_timeout", "1"], { home: b.home });
  const r = await runAtlas(["--json", "net", "ping", a.nodeId], { home: b.home });
  hole.close();
  assert.equal(r.code, 4, r.stderr);
  const e = jsonError(r.stderr);
  assert.equal(e.code, "ERR_BANNED");
  assert.match(e.message, /^peer refused the handshake: banned until \d+$/);
});

test("exit 5: a live session whose peer stops answering times out on the Pong (ERR_TIMEOUT)", async () => {
  const a = await initHome("alpha");
  const b = await initHome("beta");
  const l = await startListener(a.home);
  await runAtlas(["config", "set", "transport.request_timeout", "1"], { home: b.home });
  const d = await startListener(b.home, [], { cmd: ["daemon"] });
  assert.equal((await runAtlas(["net", "connect", l.address], { home: b.home })).code, 0);
  l.proc.kill("SIGSTOP");
  try {
    const r = await runAtlas(["--json", "net", "ping", a.nodeId], { home: b.home });
    assert.equal(r.code, 5, r.stderr + r.stdout);
    assert.equal(jsonError(r.stderr).code, "ERR_TIMEOUT");
  } finally {
    l.proc.kill("SIGCONT");
  }
  await d.stop();
});

test("exit 6: net inbox and net peers on a home without identity, and the home is not created", async () => {
  const home = join(await tmpHome(), "fresh");
  for (const cmd of [["net", "inbox"], ["net", "peers"], ["net", "outbox"]]) {
    const r = await runAtlas(["--json", ...cmd], { home });
    assert.equal(r.code, 6, `${cmd.join(" ")}: ${r.stdout}${r.stderr}`);
    assert.equal(r.stdout, "");
    assert.equal(jsonError(r.stderr).code, "ERR_NO_IDENTITY");
  }
  assert.equal(existsSync(home), false);
});

test("several paths tried: a refusal (4) beats a timeout after an answer (5), which beats silence (3)", () => {
  const silent = new AtlasError("ERR_UNREACHABLE", "no answer from a within 1 s");
  const late = new AtlasError("ERR_HANDSHAKE_TIMEOUT", "handshake not finished within 1 s");
  const banned = new AtlasError("ERR_BANNED", "peer refused the handshake: banned until 5");
  const tried = ["a", "b", "relay c"];
  assert.equal(pickError([silent, late, banned], tried), banned);
  assert.equal(pickError([silent, late], tried).exit, 5);
  const none = pickError([silent, silent], tried);
  assert.equal(none.exit, 3);
  assert.equal(none.message, "no answer from a, b, relay c");
});

test("a 4001 that names a ban reads back as ERR_BANNED, a plain rate limit as ERR_RATE_LIMITED", () => {
  assert.equal(new AtlasError("ERR_BANNED", "banned until 5").protocolCode, 4001);
  assert.equal(remoteCodeName(4001, "banned until 5"), "ERR_BANNED");
  assert.equal(remoteCodeName(4001, "rate limit exceeded (messages)"), "ERR_RATE_LIMITED");
});
