/** `atlas id …`, `atlas config …`, global flags and Deno, through the real CLI (docs/architecture.md#home-directory, docs/protocol.md#nodes-and-identities, README.md#commands, src/config/defaults.ts). */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmod, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { cleanupHomes, ROOT, runAtlas, tmpHome } from "./helpers/cli.ts";
import { VERSION } from "../src/version.ts";
import { assertVersionLine } from "./helpers/version.ts";

after(cleanupHomes);

test("--version matches package.json and names the commit", async () => {
  const pkg = JSON.parse(await readFile(join(ROOT, "package.json"), "utf8"));
  assert.equal(pkg.version, VERSION);
  const r = await runAtlas(["--version"]);
  assert.equal(r.code, 0);
  assertVersionLine(r.stdout);
});

test("id init writes a 0600 PKCS#8 key in a 0700 directory that openssl reads", async () => {
  const home = await tmpHome();
  const r = await runAtlas(["id", "init", "--name", "alpha"], { home });
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split("\n");
  assert.match(lines[0]!, /^Node ID : atlas_[0-9a-f]{64}$/);
  assert.equal(lines[1], "Name    : alpha");
  assert.equal(lines[2], `Key     : ${join(home, "keys", "node-key.pem")}`);
  const key = join(home, "keys", "node-key.pem");
  assert.equal((await stat(key)).mode & 0o777, 0o600);
  assert.equal((await stat(join(home, "keys"))).mode & 0o777, 0o700);
  assert.match(await readFile(key, "utf8"), /^-----BEGIN PRIVATE KEY-----\n/);
  const pub = execFileSync("openssl", ["pkey", "-in", key, "-pubout", "-outform", "DER"]);
  const { createHash } = await import("node:crypto");
  const id = "atlas_" + createHash("sha256").update(pub.subarray(pub.length - 32)).digest("hex");
  assert.equal(lines[0], `Node ID : ${id}`);
});

test("id init refuses to overwrite without --force", async () => {
  const home = await tmpHome();
  const first = JSON.parse((await runAtlas(["id", "init", "--json"], { home })).stdout);
  const again = await runAtlas(["id", "init"], { home });
  assert.equal(again.code, 2);
  assert.match(again.stderr, /^error: identity already exists at .* \(use --force to replace it\)\n$/);
  const forced = JSON.parse((await runAtlas(["id", "init", "--force", "--json"], { home })).stdout);
  assert.notEqual(forced.node_id, first.node_id);
});

test("a key readable by group or others is refused with the chmod fix", async () => {
  const home = await tmpHome();
  await runAtlas(["id", "init"], { home });
  const key = join(home, "keys", "node-key.pem");
  await chmod(key, 0o644);
  const r = await runAtlas(["id", "show"], { home });
  assert.equal(r.code, 1);
  assert.equal(r.stderr, `error: key file ${key} is accessible by group or others: run \`chmod 600 ${key}\`\n`);
});

test("id set-name, set-bio, add-skill and remove-skill edit the card id show prints", async () => {
  const home = await tmpHome();
  await runAtlas(["id", "init", "--name", "alpha"], { home });
  assert.equal((await runAtlas(["id", "set-name", "Alpha Agent"], { home })).stdout, "Name : Alpha Agent\n");
  assert.equal((await runAtlas(["id", "set-bio", "summarises things"], { home })).code, 0);
  assert.equal((await runAtlas(["id", "add-skill", "Summarise"], { home })).stdout, "Skills : summarise\n");
  assert.equal((await runAtlas(["id", "add-skill", "translate"], { home })).stdout, "Skills : summarise, translate\n");
  assert.equal((await runAtlas(["id", "remove-skill", "summarise"], { home })).stdout, "Skills : translate\n");
  const show = await runAtlas(["id", "show"], { home });
  assert.match(
    show.stdout,
    /^Node ID {2}: atlas_[0-9a-f]{64}\nName {5}: Alpha Agent\nBio {6}: summarises things\nSkills {3}: translate\nOperator : -\nKey {6}: .*node-key\.pem\n$/,
  );
  const j = JSON.parse((await runAtlas(["id", "show", "--json"], { home })).stdout);
  assert.deepEqual({ name: j.name, bio: j.bio, skills: j.skills }, {
    name: "Alpha Agent",
    bio: "summarises things",
    skills: ["translate"],
  });
  const long = await runAtlas(["id", "set-name", "x".repeat(65)], { home });
  assert.equal(long.code, 2);
  assert.equal(long.stderr.split("\n").length, 2);
});

test("ATLAS_HOME is the home unless --home names another", async () => {
  const envHome = await tmpHome();
  const flagHome = await tmpHome();
  const a = JSON.parse((await runAtlas(["id", "init", "--json"], { env: { ATLAS_HOME: envHome } })).stdout);
  assert.equal(a.home, envHome);
  const b = JSON.parse(
    (await runAtlas(["--home", flagHome, "id", "init", "--json"], { env: { ATLAS_HOME: envHome } })).stdout,
  );
  assert.equal(b.home, flagHome);
});

test("config set, get and show validate against the schema", async () => {
  const home = await tmpHome();
  assert.equal((await runAtlas(["config", "get", "network.port"], { home })).stdout, "4433\n");
  const set = await runAtlas(["config", "set", "transport.dial_timeout", "2"], { home });
  assert.equal(set.code, 0, set.stderr);
  assert.equal(set.stdout, "transport.dial_timeout = 2\n");
  assert.equal((await runAtlas(["config", "get", "transport.dial_timeout"], { home })).stdout, "2\n");
  const toml = await readFile(join(home, "state", "config.toml"), "utf8");
  assert.match(toml, /\[transport\]\ndial_timeout = 2/);
  const bad = await runAtlas(["config", "set", "transport.dial_timeout", "soon"], { home });
  assert.equal(bad.code, 2);
  assert.equal(bad.stderr, "error: 'transport.dial_timeout' must be an integer, got 'soon'\n");
  const unknown = await runAtlas(["config", "set", "transport.warp", "9"], { home });
  assert.equal(unknown.code, 2);
  assert.equal(await readFile(join(home, "state", "config.toml"), "utf8"), toml);
  const show = await runAtlas(["config", "show", "--json"], { home });
  assert.equal(JSON.parse(show.stdout).transport.dial_timeout, 2);
});

test("the same cli.ts runs under Deno", async () => {
  const deno = join(ROOT, "node_modules", ".bin", "deno");
  const home = await tmpHome();
  const help = execFileSync(deno, ["run", "-A", join(ROOT, "cli.ts"), "--help"], {
    encoding: "utf8",
    env: { ...process.env, NO_COLOR: "1" },
  });
  assert.match(help, /^Usage: atlas \[options\] \[command\]/);
  const init = execFileSync(deno, ["run", "-A", join(ROOT, "cli.ts"), "--home", home, "id", "init", "--json"], {
    encoding: "utf8",
  });
  assert.match(JSON.parse(init).node_id, /^atlas_[0-9a-f]{64}$/);
});
