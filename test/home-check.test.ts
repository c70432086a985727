/** checkHome (src/config/home-check.ts) on real directories: the home's StrictModes, unit level. */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { chmod, chown, mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkHome } from "../src/config/home-check.ts";
import { homePaths } from "../src/config/paths.ts";
import { isAtlasError } from "../src/errors.ts";

const asRoot = process.getuid?.() === 0;
const ROOT_ONLY = { skip: !asRoot && "needs root (chown)" };
const ME = process.getuid?.() ?? 0;
const NOBODY = 65534;

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "atlas-homecheck-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

let n = 0;
/** A fresh directory under `dir` (0700), and the paths of a home in it laid out as Atlas does. */
async function home(opts: { layout?: boolean } = {}) {
  const h = join(dir, `h${n++}`);
  await mkdir(h, { mode: 0o700 });
  const p = homePaths(h);
  if (opts.layout) {
    await mkdir(p.keysDir, { mode: 0o700 });
    await mkdir(p.stateDir, { mode: 0o700 });
    await writeFile(p.keyFile, "k", { mode: 0o600 });
    await writeFile(p.configFile, "", { mode: 0o600 });
  }
  return p;
}

/** The check's verdict: "ok", or the refusal's message. */
async function verdict(p: ReturnType<typeof homePaths>, uid = ME): Promise<string> {
  try {
    await checkHome(p, uid);
    return "ok";
  } catch (e) {
    assert.ok(isAtlasError(e, "ERR_HOME_INSECURE"), String(e));
    assert.equal(e.exit, 1);
    return e.message;
  }
}

const writable = (h: string, p: string) =>
  `home ${h} is not safe: ${p} is writable by group or others: run \`chmod go-w ${p}\``;

test("a private home under /tmp passes, created or not yet", async () => {
  const p = await home({ layout: true });
  assert.equal(await verdict(p), "ok");
  assert.equal(await verdict(homePaths(join(p.home, "not", "yet"))), "ok");
});

test("a home, keys/, state/ or config.toml writable by group or others is refused", async () => {
  const p = await home({ layout: true });
  for (
    const [path, mode, back] of [
      [p.home, 0o777, 0o700],
      [p.home, 0o720, 0o700],
      [p.keysDir, 0o702, 0o700],
      [p.stateDir, 0o770, 0o700],
      [p.configFile, 0o622, 0o600],
    ] as const
  ) {
    await chmod(path, mode);
    assert.equal(await verdict(p), writable(p.home, path), `${path} ${mode.toString(8)}`);
    await chmod(path, back);
  }
  // Readable is fine: only who can write matters here (the key's own check refuses reading).
  await chmod(p.home, 0o755);
  await chmod(p.configFile, 0o644);
  assert.equal(await verdict(p), "ok");
});

test("a sticky home is still refused: only directories above it may be sticky", async () => {
  const p = await home();
  await chmod(p.home, 0o1777);
  assert.equal(await verdict(p), writable(p.home, p.home));
});

test("a writable parent is refused, also for a home not created yet", async () => {
  const parent = join(dir, `p${n++}`);
  await mkdir(parent, { mode: 0o777 });
  await chmod(parent, 0o777);
  const h = join(parent, "home");
  assert.equal(await verdict(homePaths(h)), writable(h, parent));
  assert.equal(await verdict(homePaths(join(h, "deeper"))), writable(join(h, "deeper"), parent));
});

test("a symlink to a home under a writable directory is refused (the real parents count)", async () => {
  const open = join(dir, `o${n++}`);
  await mkdir(join(open, "home"), { recursive: true, mode: 0o700 });
  await chmod(open, 0o777);
  const link = join(dir, `l${n++}`);
  await symlink(join(open, "home"), link);
  assert.equal(await verdict(homePaths(link)), writable(link, open));
});

test("a home owned by another user than the caller or root is refused, even for root", ROOT_ONLY, async () => {
  const p = await home({ layout: true });
  await chown(p.stateDir, NOBODY, NOBODY);
  assert.equal(
    await verdict(p, 0),
    `home ${p.home} is not safe: ${p.stateDir} is owned by another user (uid ${NOBODY}): run \`chown root ${p.stateDir}\``,
  );
  await chown(p.stateDir, 0, 0);
  await chown(p.keyFile, NOBODY, NOBODY);
  assert.match(await verdict(p, 0), /node-key\.pem is owned by another user \(uid 65534\)/);
  // To nobody itself, its own files and root's directories are fine (the uid is the check's input).
  assert.equal(await verdict(p, NOBODY), "ok");
  await chown(p.keyFile, 0, 0);
  assert.equal(await verdict(p, 0), "ok");
});

test("a sticky world-writable parent passes only when root owns it", ROOT_ONLY, async () => {
  const shared = join(dir, `s${n++}`);
  await mkdir(shared);
  await chmod(shared, 0o1777);
  const h = join(shared, "home");
  assert.equal(await verdict(homePaths(h), 0), "ok");
  // Owned by nobody, it is refused for its owner first: the owner can rename anything in it.
  await chown(shared, NOBODY, NOBODY);
  assert.match(await verdict(homePaths(h), 0), new RegExp(`${shared} is owned by another user`));
  // And for nobody itself, a sticky directory it owns is still writable by others: refused.
  assert.equal(await verdict(homePaths(h), NOBODY), writable(h, shared));
});
