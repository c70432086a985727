/**
 * The home's StrictModes through the real CLI (issue 16, defect 4): a home, or a directory above
 * it, writable by group or others or owned by another user is refused with one line naming the
 * fix; homes under root-owned sticky directories such as /tmp, and homes Atlas creates, pass.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmod, chown, mkdir, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BUNDLE, cleanupHomes, runAtlas, tmpHome } from "./helpers/cli.ts";

after(cleanupHomes);

const asRoot = process.getuid?.() === 0;
const NOBODY = 65534;

test("a 0777 home is refused with one line naming the chmod, exit 1", async () => {
  const home = await tmpHome();
  assert.equal((await runAtlas(["id", "init"], { home })).code, 0);
  await chmod(home, 0o777);
  const r = await runAtlas(["id", "show"], { home });
  assert.equal(r.code, 1);
  assert.equal(r.stdout, "");
  assert.equal(
    r.stderr,
    `error: home ${home} is not safe: ${home} is writable by group or others: run \`chmod go-w ${home}\`\n`,
  );
  const j = await runAtlas(["net", "peers", "--json"], { home });
  assert.equal(j.code, 1);
  assert.deepEqual(JSON.parse(j.stderr), {
    error: {
      code: "ERR_HOME_INSECURE",
      message: `home ${home} is not safe: ${home} is writable by group or others: run \`chmod go-w ${home}\``,
    },
  });
  await chmod(home, 0o700);
  assert.equal((await runAtlas(["id", "show"], { home })).code, 0, "the named fix is enough");
});

test("a group-writable state/ stops the daemon before it starts", async () => {
  const home = await tmpHome();
  await runAtlas(["id", "init"], { home });
  const state = join(home, "state");
  await chmod(state, 0o770);
  const r = await runAtlas(["daemon", "--host", "127.0.0.1", "--port", "0"], { home, timeoutMs: 10_000 });
  assert.equal(r.code, 1);
  assert.equal(
    r.stderr,
    `error: home ${home} is not safe: ${state} is writable by group or others: run \`chmod go-w ${state}\`\n`,
  );
});

test("a group-writable parent is refused, and nothing is created under it", async () => {
  const parent = await tmpHome();
  await chmod(parent, 0o775);
  const home = join(parent, "home");
  const r = await runAtlas(["id", "init"], { home });
  assert.equal(r.code, 1);
  assert.equal(
    r.stderr,
    `error: home ${home} is not safe: ${parent} is writable by group or others: run \`chmod go-w ${parent}\`\n`,
  );
  await assert.rejects(stat(home), { code: "ENOENT" });
});

test("a home under the sticky, root-owned /tmp is accepted", async () => {
  const t = await stat(tmpdir());
  assert.equal(t.uid, 0, `${tmpdir()} is root-owned`);
  assert.equal(t.mode & 0o1777, 0o1777, `${tmpdir()} is sticky and world-writable`);
  const home = await tmpHome();
  assert.equal((await runAtlas(["id", "init"], { home })).code, 0);
  assert.equal((await runAtlas(["id", "show"], { home })).code, 0);
  assert.equal((await runAtlas(["net", "peers"], { home })).code, 0);
});

test("homes Atlas creates pass, whatever the umask", async () => {
  const home = join(await tmpHome(), "a", "b");
  // umask 000: every mode Atlas asks for is what it gets, so this shows the modes it asks for.
  const atlas = (args: string) =>
    spawnSync("sh", ["-c", `umask 000 && exec "${process.execPath}" "${BUNDLE}" --home "${home}" ${args}`], {
      encoding: "utf8",
      env: { ...process.env, NODE_OPTIONS: "" },
    });
  for (const args of ["config set inbox.retention_days 10", "id init", "net peers", "id show"]) {
    const r = atlas(args);
    assert.equal(r.status, 0, `${args}: ${r.stderr}`);
  }
  for (const d of [home, join(home, "keys"), join(home, "state")]) {
    assert.equal((await stat(d)).mode & 0o777, 0o700, d);
  }
  for (const f of ["keys/node-key.pem", "state/config.toml", "state/profile.toml", "state/peers.db"]) {
    assert.equal((await stat(join(home, f))).mode & 0o777, 0o600, f);
  }
});

test(
  "a home owned by another user is refused, even when root runs atlas",
  { skip: !asRoot && "needs root" },
  async () => {
    // OpenSSH's rule: owned by the user or by root. The owner of a directory can rename its
    // entries whatever its mode, so root trusting nobody's directory would let nobody plant files.
    const home = await tmpHome();
    await runAtlas(["id", "init"], { home });
    await chown(home, NOBODY, NOBODY);
    const r = await runAtlas(["id", "show"], { home });
    assert.equal(r.code, 1);
    assert.equal(
      r.stderr,
      `error: home ${home} is not safe: ${home} is owned by another user (uid ${NOBODY}): run \`chown root ${home}\`\n`,
    );

    const parent = await tmpHome();
    await chmod(parent, 0o755);
    await chown(parent, NOBODY, NOBODY);
    const inner = join(parent, "home");
    await mkdir(inner, { mode: 0o700 });
    const p = await runAtlas(["id", "init"], { home: inner });
    assert.equal(p.code, 1);
    assert.match(p.stderr, new RegExp(`^error: home ${inner} is not safe: ${parent} is owned by another user`));
  },
);
