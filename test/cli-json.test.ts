/**
 * The JSON contract (docs/cli.md): every command's `--json` output, produced by the real CLI
 * against real daemons, a relay and a bootstrap node on 127.0.0.1, conforms to the one shape the
 * contract names for it; and docs/cli.md is what `npm run docs:cli` generates.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { CONTRACT, ERROR_CONTRACT } from "../src/cli/contract.ts";
import { validate } from "../src/daemon/schema.ts";
import { CLI_DOC, renderCliDoc } from "../scripts/gen-cli-doc.ts";
import { atlasCommand, cleanupAll, initHome, NO_STUN, runAtlas, tmpHome } from "./helpers/cli.ts";

/** Commands that need a Farcaster relay or hub: test/operator-cli.test.ts checks their output against the shape. */
const NEEDS_HUB = new Set(["id auth-farcaster", "id link-farcaster"]);
/** Commands whose own suites check their --json against the shape: test/netcheck.test.ts, test/devnet.test.ts. */
const CHECKED_ELSEWHERE = new Set(["netcheck", "devnet up", "devnet down"]);
const checked = new Set<string>();

/** Check `stdout` of `command` against its contract: one document, a list, or NDJSON lines. */
function conforms(command: string, stdout: string): void {
  const c = CONTRACT.find((x) => x.command === command);
  assert.ok(c, `no contract for ${command}`);
  const values = c.kind === "stream" ? stdout.trimEnd().split("\n").map((l) => JSON.parse(l)) : [JSON.parse(stdout)];
  if (c.kind === "list") assert.ok(Array.isArray(values[0]), `${command} prints an array`);
  const items = c.kind === "list" ? values[0] as unknown[] : values;
  assert.ok(items.length > 0, `${command} printed something to check`);
  assert.deepEqual(items.flatMap((v) => validate(c.shape, v)), [], `${command}: ${stdout}`);
  checked.add(command);
}

async function json(command: string, args: string[], home: string): Promise<string> {
  const r = await runAtlas(["--json", ...args], { home });
  assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
  conforms(command, r.stdout);
  return r.stdout;
}

const procs: ChildProcess[] = [];

/** Start a node command with --json; resolve with its first stdout line (the listening event). */
function startNode(home: string, cmd: string[], extra: string[] = []): Promise<{ line: string; address: string }> {
  const [bin, pre] = atlasCommand();
  const p = spawn(bin, [...pre, "--home", home, "--json", ...cmd, "--host", "127.0.0.1", "--port", "0", ...extra], {
    env: { ...process.env, NODE_OPTIONS: "" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  procs.push(p);
  let out = "";
  let err = "";
  p.stderr!.on("data", (d) => (err += d));
  return new Promise((resolve, reject) => {
    p.on("close", (c) => reject(new Error(`${cmd.join(" ")} exited ${c}: ${err}`)));
    p.stdout!.on("data", (d) => {
      out += d;
      const nl = out.indexOf("\n");
      if (nl >= 0) resolve({ line: out.slice(0, nl + 1), address: JSON.parse(out.slice(0, nl)).address });
    });
  });
}

/** Poll `fn` until it returns true (bounded): waiting on a condition, not a guess. */
async function until(fn: () => Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("every command's --json output has its one shape", () => {
  let a: { home: string; nodeId: string };
  let b: { home: string; nodeId: string };
  let boot: string;

  before(async () => {
    a = await initHome("alpha");
    b = await initHome("beta");
    const bootHome = await initHome("boot");
    const relayHome = await initHome("relay");
    const bn = await startNode(bootHome.home, ["bootstrap"]);
    conforms("bootstrap", bn.line);
    boot = bn.address;
    conforms("relay", (await startNode(relayHome.home, ["relay"])).line);
    conforms("net listen", (await startNode(a.home, ["net", "listen"], ["--bootstrap", boot])).line);
  });
  after(async () => {
    for (const p of procs) p.kill("SIGKILL");
    await cleanupAll();
  });

  test("version, identity, card and config commands", async () => {
    await json("--version", ["--version"], b.home);
    const fresh = await tmpHome();
    await json("id init", ["id", "init", "--name", "fresh"], fresh);
    await writeFile(join(fresh, "state", "config.toml"), NO_STUN);
    await json("id show", ["id", "show"], fresh);
    await json("id set-name", ["id", "set-name", "freshly"], fresh);
    await json("id set-bio", ["id", "set-bio", "a test agent"], fresh);
    await json("id add-skill", ["id", "add-skill", "search"], fresh);
    await json("id remove-skill", ["id", "remove-skill", "search"], fresh);
    await json("id unlink-farcaster", ["id", "unlink-farcaster"], fresh);
    await json("config show", ["config", "show"], fresh);
    await json("config get", ["config", "get", "transport.dial_timeout"], fresh);
    await json("config set", ["config", "set", "transport.dial_timeout", "2"], fresh);
  });

  test("every peer command's --json output matches its documented shape without a daemon", async () => {
    await json("net connect", ["net", "connect", `${a.nodeId}@${await addressOf(a.home)}`], b.home);
    await json("net ping", ["net", "ping", a.nodeId, "--count", "2", "--interval", "10"], b.home);
    const sent = JSON.parse(await json("net send", ["net", "send", a.nodeId, '{"n":1}'], b.home));
    assert.equal(sent.queued, false);
    await json("net peers", ["net", "peers"], b.home);
    await json("net outbox", ["net", "outbox"], b.home);
    await json("net ban", ["net", "ban", a.nodeId, "--for", "60"], b.home);
    await json("net unban", ["net", "unban", a.nodeId], b.home);
    await json("net disconnect", ["net", "disconnect", a.nodeId], b.home);
    await until(async () => {
      const r = await runAtlas(["--json", "net", "discover", "--bootstrap", boot], { home: b.home });
      return r.code === 0 && JSON.parse(r.stdout).peers.length > 0;
    }, "alpha to be listed by the bootstrap node");
    await json("net discover", ["net", "discover", "--bootstrap", boot], b.home);
    await json("status", ["status"], b.home);
    await json("net inbox", ["net", "inbox"], a.home);
  });

  test("the daemon's listening event, a queued send, status and daemon stop match their shapes", async () => {
    conforms("daemon", (await startNode(b.home, ["daemon"])).line);
    const queued = JSON.parse(await json("net send", ["net", "send", a.nodeId, '"hi"'], b.home));
    assert.equal(queued.queued, true);
    assert.equal((await runAtlas(["net", "connect", a.nodeId], { home: b.home })).code, 0);
    await json("status", ["status"], b.home);
    // net request from beta, answered by alpha's `net reply`: both daemons receive.
    const req = runAtlas(["--json", "net", "request", a.nodeId, '{"q":1}', "--timeout", "20s"], { home: b.home });
    let asked = "";
    await until(async () => {
      const r = await runAtlas(["--json", "net", "inbox"], { home: a.home });
      asked = r.stdout.trimEnd().split("\n").map((l) => JSON.parse(l)).find((m) => m.body?.q === 1)?.id ?? "";
      return asked !== "";
    }, "the request at alpha");
    await json("net reply", ["net", "reply", asked, '{"a":1}'], a.home);
    const r = await req;
    assert.equal(r.code, 0, r.stderr);
    conforms("net request", r.stdout);
    await json("daemon stop", ["daemon", "stop"], b.home);
  });

  test("an error is one error document on stderr", async () => {
    const r = await runAtlas(["--json", "net", "ping", "deadbeefdeadbeef"], { home: b.home });
    assert.equal(r.code, 2);
    assert.equal(r.stdout, "");
    assert.deepEqual(validate(ERROR_CONTRACT.shape, JSON.parse(r.stderr)), []);
  });

  test("every command of the contract was checked, but those that need a Farcaster hub", () => {
    const missing = CONTRACT.map((c) => c.command).filter((c) =>
      !checked.has(c) && !NEEDS_HUB.has(c) && !CHECKED_ELSEWHERE.has(c)
    );
    assert.deepEqual(missing, []);
  });
});

/** The address alpha's daemon listens on, from its status. */
async function addressOf(home: string): Promise<string> {
  const r = await runAtlas(["--json", "status"], { home });
  return JSON.parse(r.stdout).listen_address;
}

test("docs/cli.md is what `npm run docs:cli` generates from the contract", async () => {
  assert.equal(await readFile(CLI_DOC, "utf8"), renderCliDoc(), "docs/cli.md is stale: run `npm run docs:cli`");
});
