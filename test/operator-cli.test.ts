/**
 * `atlas id auth-farcaster` · `id link-farcaster` · `id unlink-farcaster` (docs/protocol.md#operator-binding, README.md#commands) through
 * the real CLI, against a local fake auth relay. No test reaches the internet.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { parse } from "smol-toml";
import { BINDING } from "../src/daemon/shapes.ts";
import { validate } from "../src/daemon/schema.ts";
import { cleanupHomes, initHome, ROOT, runAtlas, tmpHome } from "./helpers/cli.ts";
import { DAY_MS, makeBinding, TEST_ADDRESS } from "./helpers/farcaster.ts";
import { type FakeAuthRelay, startFakeAuthRelay } from "./helpers/fake-auth-relay.ts";

const relays: FakeAuthRelay[] = [];
after(async () => {
  await Promise.all(relays.splice(0).map((r) => r.close()));
  await cleanupHomes();
});

async function relay(o: Parameters<typeof startFakeAuthRelay>[0] = {}): Promise<FakeAuthRelay> {
  const r = await startFakeAuthRelay(o);
  relays.push(r);
  return r;
}

/** The operator binding in `state/profile.toml`, as far as these tests read it. */
interface StoredProfile {
  operator?: { fid: number; username: string; custody_address: string; message: string; signature: string };
}

async function profile(home: string): Promise<StoredProfile> {
  return parse(await readFile(join(home, "state", "profile.toml"), "utf8")) as StoredProfile;
}

/** A TCP port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as import("node:net").AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const fast = ["--poll-interval-ms", "50"];

test("auth-farcaster stores the binding approved through the relay and id show names the operator", async () => {
  const { home, nodeId } = await initHome("alpha");
  const r = await relay({ pendingPolls: 2 });
  const before = Date.now();
  const res = await runAtlas(["id", "auth-farcaster", "--auth-relay", r.url, ...fast], { home });
  assert.equal(res.code, 0, res.stderr);
  assert.equal(res.stderr, "", "no spinner or QR code without a terminal");
  const lines = res.stdout.trimEnd().split("\n");
  assert.equal(lines.length, 4, res.stdout);
  assert.match(
    lines[0]!,
    new RegExp(`^Approve  : ${r.url.replace(/[.:/]/g, "\\$&")}/~/siwf\\?channelToken=[0-9a-f-]{36}&`),
  );
  assert.equal(lines[1], "Operator : @alice (fid 1234)");
  assert.equal(lines[2], `Custody  : ${TEST_ADDRESS}`);
  const expires = Date.parse(lines[3]!.replace(/^Expires {2}: /, ""));
  assert.ok(Math.abs(expires - (before + 365 * DAY_MS)) < 60_000, lines[3]);

  // What was asked of the relay: this node's full ID as Request ID, an alphanumeric nonce, the
  // binding's lifetime as Expiration Time, custody signatures only, polled with the channel token.
  assert.equal(r.channels.length, 1);
  const ch = r.channels[0]!;
  assert.equal(ch.request.requestId, nodeId);
  assert.match(String(ch.request.nonce), /^[A-Za-z0-9]{24}$/);
  assert.equal(ch.request.domain, "atlas.local");
  assert.equal(ch.request.siweUri, "https://atlas.local/operator-auth");
  assert.equal(ch.request.acceptAuthAddress, false);
  assert.ok(Math.abs(Date.parse(String(ch.request.expirationTime)) - (before + 365 * DAY_MS)) < 60_000);
  assert.equal(ch.polls, 3);
  assert.deepEqual(new Set(ch.authHeaders), new Set([`Bearer ${ch.token}`]));

  const op = (await profile(home)).operator!;
  assert.equal(op.fid, 1234);
  assert.equal(op.username, "alice");
  assert.equal(op.custody_address, TEST_ADDRESS);
  assert.match(op.message, new RegExp(`\\nRequest ID: ${nodeId}\\n`));
  assert.match(op.message, /\n- farcaster:\/\/fid\/1234$/);
  assert.match(op.signature, /^0x[0-9a-f]{130}$/);

  const show = await runAtlas(["id", "show"], { home });
  assert.equal(show.code, 0, show.stderr);
  assert.match(show.stdout, /^Operator : @alice \(fid 1234\)$/m);
  const showJson = JSON.parse((await runAtlas(["id", "show", "--json"], { home })).stdout);
  assert.deepEqual(showJson.operator, { fid: 1234, username: "alice" });
});

test("auth-farcaster --json prints one object on stdout and the approval URL on stderr", async () => {
  const { home } = await initHome("beta");
  const r = await relay({ pendingPolls: 0, fid: 77, username: "bob" });
  const before = Date.now();
  const res = await runAtlas(
    [
      "id",
      "auth-farcaster",
      "--auth-relay",
      r.url + "/",
      "--domain",
      "agents.example",
      "--siwe-uri",
      "https://agents.example/login",
      "--valid-days",
      "30",
      ...fast,
      "--json",
    ],
    { home },
  );
  assert.equal(res.code, 0, res.stderr);
  const out = res.stdout.trimEnd().split("\n");
  assert.equal(out.length, 1);
  const j = JSON.parse(out[0]!);
  assert.deepEqual(validate(BINDING, j), [], "the operator_binding shape of docs/cli.md");
  assert.equal(j.fid, 77);
  assert.equal(j.username, "bob");
  assert.equal(j.custody_address, TEST_ADDRESS);
  assert.ok(Math.abs(j.expires_at * 1000 - (before + 30 * DAY_MS)) < 60_000);
  assert.ok(j.approval_url.startsWith(`${r.url}/~/siwf?channelToken=`));
  assert.equal(res.stderr, `Approve  : ${j.approval_url}\n`);
  assert.equal(r.channels[0]!.request.domain, "agents.example");
  assert.equal(r.channels[0]!.request.siweUri, "https://agents.example/login");
  const op = (await profile(home)).operator!;
  assert.equal(op.fid, 77);
  assert.match(op.message, /^agents\.example wants you to sign in/);
});

test("auth-farcaster with the relay down exits 3 with one line", async () => {
  const { home } = await initHome("gamma");
  const url = `http://127.0.0.1:${await closedPort()}`;
  const res = await runAtlas(["id", "auth-farcaster", "--auth-relay", url, ...fast], { home });
  assert.equal(res.code, 3);
  assert.equal(res.stdout, "");
  assert.match(res.stderr, new RegExp(`^error: auth relay ${url.replace(/[.:/]/g, "\\$&")} unreachable: [^\\n]+\\n$`));
  const j = await runAtlas(["id", "auth-farcaster", "--auth-relay", url, ...fast, "--json"], { home });
  assert.equal(j.code, 3);
  assert.equal(JSON.parse(j.stderr).error.code, "ERR_UNREACHABLE");
  assert.equal((await profile(home)).operator, undefined);
});

test("auth-farcaster exits 4 when the relay refuses the channel and 3 when it fails with 5xx", async () => {
  const { home } = await initHome("lambda");
  const refusing = await relay({ createStatus: 400 });
  const res = await runAtlas(["id", "auth-farcaster", "--auth-relay", refusing.url, ...fast], { home });
  assert.equal(res.code, 4);
  assert.equal(
    res.stderr,
    `error: auth relay ${refusing.url} refused creating the sign-in channel: HTTP 400: channel creation disabled in fake relay\n`,
  );
  const failing = await relay({ statusStatus: 503 });
  const res2 = await runAtlas(["id", "auth-farcaster", "--auth-relay", failing.url, ...fast], { home });
  assert.equal(res2.code, 3);
  assert.match(
    res2.stderr,
    /^error: auth relay .* unreachable: the sign-in status request failed with HTTP 503: status disabled in fake relay\n$/,
  );
  assert.equal(failing.channels[0]!.polls, 3, "a blip is tolerated, an outage is not");
  assert.equal((await profile(home)).operator, undefined);
});

test("auth-farcaster ends with exit 3 when the relay accepts but never answers", async () => {
  const { home } = await initHome("kappa");
  const sockets = new Set<import("node:net").Socket>();
  const silent = createServer((s) => sockets.add(s)); // accepts, never answers
  await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(silent.address() as import("node:net").AddressInfo).port}`;
  try {
    const t0 = Date.now();
    const res = await runAtlas(["id", "auth-farcaster", "--auth-relay", url, "--timeout-secs", "1"], {
      home,
      timeoutMs: 25_000,
    });
    assert.equal(res.code, 3, res.stderr);
    assert.equal(res.stderr, `error: auth relay ${url} unreachable: no answer within 10 s\n`);
    assert.ok(Date.now() - t0 < 15_000, "the hung request does not keep the process alive");
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => silent.close(() => r()));
  }
});

test("auth-farcaster exits 5 when nobody approves within --timeout-secs", async () => {
  const { home } = await initHome("delta");
  const r = await relay({ pendingPolls: Infinity });
  const t0 = Date.now();
  const res = await runAtlas([
    "id",
    "auth-farcaster",
    "--auth-relay",
    r.url,
    "--timeout-secs",
    "2",
    "--poll-interval-ms",
    "200",
  ], { home, timeoutMs: 15_000 });
  const took = Date.now() - t0;
  assert.equal(res.code, 5, res.stderr);
  assert.equal(res.stderr, "error: no approval within 2 s\n");
  assert.match(res.stdout, /^Approve {2}: /); // the URL was shown before waiting
  assert.ok(took >= 2000 && took < 8000, `took ${took} ms`);
  assert.ok(r.channels[0]!.polls >= 5, `polled ${r.channels[0]!.polls} times`);
  assert.equal((await profile(home)).operator, undefined);
});

test("auth-farcaster refuses a binding for another node or with a replayed nonce", async () => {
  const { home } = await initHome("epsilon");
  const other = "atlas_" + "cd".repeat(32);
  const r = await relay({ pendingPolls: 0, requestIdOverride: other });
  const res = await runAtlas(["id", "auth-farcaster", "--auth-relay", r.url, ...fast], { home });
  assert.equal(res.code, 1, res.stderr);
  assert.equal(
    res.stderr,
    `error: the auth relay returned a binding that does not verify: binding is for another node (request ID ${other})\n`,
  );
  assert.equal((await profile(home)).operator, undefined);

  const replay = await relay({ pendingPolls: 0, nonceOverride: "oldNonce12345678" });
  const res2 = await runAtlas(["id", "auth-farcaster", "--auth-relay", replay.url, ...fast, "--json"], { home });
  assert.equal(res2.code, 1);
  const err = JSON.parse(res2.stderr.trimEnd().split("\n").pop()!);
  assert.equal(err.error.code, "ERR_NOT_VERIFIED");
  assert.match(err.error.message, /nonce is not this sign-in's/);
  assert.equal((await profile(home)).operator, undefined);
});

test("auth-farcaster exits 2 for bad flags and 6 without an identity", async () => {
  const { home } = await initHome("zeta");
  const bad = await runAtlas(["id", "auth-farcaster", "--timeout-secs", "soon"], { home });
  assert.equal(bad.code, 2);
  assert.equal(bad.stderr, 'error: invalid --timeout-secs "soon": expected a positive number\n');
  const badUrl = await runAtlas(["id", "auth-farcaster", "--auth-relay", "ftp://relay.example"], { home });
  assert.equal(badUrl.code, 2);
  const empty = await tmpHome();
  const none = await runAtlas(["id", "auth-farcaster", "--auth-relay", "http://127.0.0.1:9"], { home: empty });
  assert.equal(none.code, 6);
});

test("link-farcaster stores a valid signed binding and unlink-farcaster removes it", async () => {
  const { home, nodeId } = await initHome("eta");
  const now = Date.now();
  const op = makeBinding({
    nodeId,
    fid: 1234,
    issuedAt: new Date(now - 3600_000),
    expirationTime: new Date(now + 30 * DAY_MS),
  });
  const file = join(home, "binding.txt");
  await writeFile(file, op.message + "\n"); // as an editor saves it: the signature covers the text without it

  const noName = await runAtlas(["id", "link-farcaster", "--message-file", file, "--signature", op.signature], {
    home,
  });
  assert.equal(noName.code, 2);
  assert.match(noName.stderr, /^error: --username is required/);

  const wrongFid = await runAtlas([
    "id",
    "link-farcaster",
    "--message-file",
    file,
    "--signature",
    op.signature,
    "--fid",
    "99",
    "--username",
    "alice",
  ], { home });
  assert.equal(wrongFid.code, 2);
  assert.equal(wrongFid.stderr, "error: --fid 99 disagrees with the message, which names farcaster://fid/1234\n");

  const res = await runAtlas([
    "id",
    "link-farcaster",
    "--message-file",
    file,
    "--signature",
    op.signature,
    "--fid",
    "1234",
    "--username",
    "@alice",
  ], { home });
  assert.equal(res.code, 0, res.stderr);
  assert.equal(
    res.stdout,
    `Operator : @alice (fid 1234)\nCustody  : ${TEST_ADDRESS}\nExpires  : ${
      new Date(Math.floor((now + 30 * DAY_MS) / 1000) * 1000).toISOString()
    }\n`,
  );
  const stored = (await profile(home)).operator;
  assert.deepEqual({ ...stored }, {
    fid: 1234,
    username: "alice",
    custody_address: TEST_ADDRESS,
    message: op.message,
    signature: op.signature,
  });
  assert.match((await runAtlas(["id", "show"], { home })).stdout, /^Operator : @alice \(fid 1234\)$/m);

  // Re-linking the same fid keeps the known username.
  const again = await runAtlas(
    ["id", "link-farcaster", "--message-file", file, "--signature", op.signature, "--json"],
    { home },
  );
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(JSON.parse(again.stdout), {
    fid: 1234,
    username: "alice",
    custody_address: TEST_ADDRESS,
    expires_at: Math.floor((now + 30 * DAY_MS) / 1000),
    approval_url: null,
  });
  assert.deepEqual(validate(BINDING, JSON.parse(again.stdout)), []);

  const un = await runAtlas(["id", "unlink-farcaster"], { home });
  assert.equal(un.code, 0, un.stderr);
  assert.equal(un.stdout, "Operator : -\n");
  assert.equal((await profile(home)).operator, undefined);
  assert.match((await runAtlas(["id", "show"], { home })).stdout, /^Operator : -$/m);
  const un2 = await runAtlas(["id", "unlink-farcaster", "--json"], { home });
  assert.deepEqual(JSON.parse(un2.stdout), { operator: null, removed: false });
});

test("link-farcaster refuses a tampered message, another node's message or a bad signature with exit 2", async () => {
  const { home, nodeId } = await initHome("theta");
  const now = Date.now();
  const good = makeBinding({
    nodeId,
    fid: 1234,
    issuedAt: new Date(now - 3600_000),
    expirationTime: new Date(now + 30 * DAY_MS),
  });
  const tampered = good.message.replace("farcaster://fid/1234", "farcaster://fid/4321");
  const file = join(home, "tampered.txt");
  await writeFile(file, tampered);
  const res = await runAtlas([
    "id",
    "link-farcaster",
    "--message-file",
    file,
    "--signature",
    good.signature,
    "--username",
    "alice",
  ], { home });
  assert.equal(res.code, 2);
  assert.match(
    res.stderr,
    /^error: binding does not verify: signature was not made by the custody address 0x[0-9a-fA-F]{40}\n$/,
  );
  assert.equal((await profile(home)).operator, undefined);

  const foreign = makeBinding({
    nodeId: "atlas_" + "ef".repeat(32),
    fid: 1234,
    issuedAt: new Date(now - 3600_000),
    expirationTime: new Date(now + DAY_MS),
  });
  await writeFile(file, foreign.message);
  const res2 = await runAtlas([
    "id",
    "link-farcaster",
    "--message-file",
    file,
    "--signature",
    foreign.signature,
    "--username",
    "alice",
  ], { home });
  assert.equal(res2.code, 2);
  assert.match(res2.stderr, /^error: binding does not verify: binding is for another node/);

  const expired = makeBinding({
    nodeId,
    fid: 1234,
    issuedAt: new Date(now - 3 * DAY_MS),
    expirationTime: new Date(now - DAY_MS),
  });
  await writeFile(file, expired.message);
  const res3 = await runAtlas([
    "id",
    "link-farcaster",
    "--message-file",
    file,
    "--signature",
    expired.signature,
    "--username",
    "alice",
  ], { home });
  assert.equal(res3.code, 2);
  assert.match(res3.stderr, /^error: binding does not verify: binding expired at /);

  const badSig = await runAtlas([
    "id",
    "link-farcaster",
    "--message-file",
    file,
    "--signature",
    "0x1234",
    "--username",
    "alice",
  ], { home });
  assert.equal(badSig.code, 2);
  assert.match(badSig.stderr, /^error: invalid --signature/);
  const missing = await runAtlas([
    "id",
    "link-farcaster",
    "--message-file",
    join(home, "nope.txt"),
    "--signature",
    good.signature,
    "--username",
    "alice",
  ], { home });
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /^error: cannot read --message-file /);
  assert.equal((await profile(home)).operator, undefined);
});

test("auth-farcaster runs under Deno too", async () => {
  const { home } = await initHome("iota");
  const r = await relay({ pendingPolls: 1 });
  const deno = join(ROOT, "node_modules", ".bin", "deno");
  const out = await new Promise<string>((resolve, reject) =>
    execFile(
      deno,
      [
        "run",
        "-A",
        join(ROOT, "cli.ts"),
        "--home",
        home,
        "id",
        "auth-farcaster",
        "--auth-relay",
        r.url,
        ...fast,
        "--json",
      ],
      { encoding: "utf8", timeout: 60_000 },
      (e, stdout, stderr) => e ? reject(new Error(`${e.message}\n${stderr}`)) : resolve(stdout),
    )
  );
  assert.equal(JSON.parse(out).username, "alice");
  assert.equal((await profile(home)).operator!.fid, 1234);
});
