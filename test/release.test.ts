/**
 * The release (scripts/release.mjs) and its installer (scripts/install.sh), on the binary that
 * `npm test` has already built (dist/atlas, as test/binary.test.ts uses it): packaging it takes
 * seconds, building it again would take many more.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { appendFile, copyFile, mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "./helpers/cli.ts";
import { VERSION_LINE_SHAPE } from "./helpers/version.ts";
import { VERSION } from "../src/version.ts";

const built = join(ROOT, "dist", "atlas");
const name = `atlas-${VERSION}-linux-x64`;
const tgz = `${name}.tar.gz`;
let dir = "";
let out = "";

after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

function run(cmd: string, args: string[], cwd = ROOT) {
  const r = spawnSync(cmd, args, {
    cwd,
    encoding: "utf8",
    timeout: 180_000,
    env: { ...process.env, NODE_OPTIONS: "" },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test("npm run release writes a tarball with the binary, units, README, LICENSE and docs, and a SHA256SUMS that checks", async () => {
  await stat(built).catch(() => assert.fail(`${built} is missing: npm run build makes it (npm test does)`));
  dir = await mkdtemp(join(tmpdir(), "atlas-release-"));
  out = join(dir, "release");
  const r = run(process.execPath, ["scripts/release.mjs", "--binary", built, "--out", out]);
  assert.equal(r.code, 0, r.stderr);

  const listing = run("tar", ["-tvzf", join(out, tgz)]);
  assert.equal(listing.code, 0, listing.stderr);
  const entries = new Map(
    listing.stdout.trim().split("\n").map((l) => {
      const f = l.split(/\s+/);
      return [f[5]!, `${f[0]} ${f[1]}`]; // path -> "mode owner/group"
    }),
  );
  // Shell completions come once `atlas completion` exists (the release script says when not).
  const completions = [...entries.keys()].filter((p) => p.startsWith(`${name}/completions/`));
  const hasCompletion = run(built, ["completion", "--help"]).stdout.startsWith("Usage: atlas completion");
  assert.equal(completions.length > 0, hasCompletion, `completions packaged: ${completions.join(", ") || "none"}`);
  const expected = [
    "",
    "LICENSE",
    "README.md",
    "atlas",
    "docs/",
    "docs/operating.md",
    "systemd/",
    "systemd/atlas-bootstrap.service",
    "systemd/atlas-daemon.service",
    "systemd/atlas-relay.service",
  ].map((p) => `${name}/${p}`);
  assert.deepEqual([...entries.keys()].filter((p) => !completions.includes(p)).sort(), expected.sort());
  assert.equal(entries.get(`${name}/atlas`), "-rwxr-xr-x 0/0");
  assert.equal(entries.get(`${name}/LICENSE`), "-rw-r--r-- 0/0");

  assert.deepEqual((await readFile(join(out, "SHA256SUMS"), "utf8")).trim().split("\n").map((l) => l.split("  ")[1]), [
    tgz,
    "install.sh",
  ]);
  const check = run("sha256sum", ["-c", "SHA256SUMS"], out);
  assert.equal(check.code, 0, check.stdout + check.stderr);
  assert.equal(check.stdout, `${tgz}: OK\ninstall.sh: OK\n`);
});

test("install.sh installs into a PREFIX a binary that runs and units that point at it", async () => {
  assert.ok(out, "needs the release of the test before");
  const prefix = join(dir, "prefix");
  const units = join(dir, "units");
  const r = run("sh", [join(out, "install.sh"), "--prefix", prefix, "--systemd", "--unit-dir", units, join(out, tgz)]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`^checked  ${tgz}: sha256 [0-9a-f]{64}\n`));
  const v = run(join(prefix, "bin", "atlas"), ["--version"]);
  assert.equal(v.code, 0, v.stderr);
  assert.match(v.stdout, VERSION_LINE_SHAPE);
  assert.equal(v.stdout, run(built, ["--version"]).stdout, "the installed binary is the one released");
  assert.equal((await stat(join(prefix, "bin", "atlas"))).mode & 0o777, 0o755);
  await stat(join(prefix, "share", "doc", "atlas", "LICENSE"));
  const unit = await readFile(join(units, "atlas-relay.service"), "utf8");
  assert.match(unit, new RegExp(`^ExecStart=${prefix}/bin/atlas relay$`, "m"));
  assert.ok(!unit.includes("/usr/local/"), "every /usr/local path now names the prefix");
});

test("install.sh refuses a tarball whose sum is wrong or missing, and installs nothing", async () => {
  assert.ok(out, "needs the release of the test before");
  const bad = join(dir, "bad");
  await mkdir(bad);
  await copyFile(join(out, tgz), join(bad, tgz));
  await copyFile(join(out, "SHA256SUMS"), join(bad, "SHA256SUMS"));
  await appendFile(join(bad, tgz), "x");
  const prefix = join(dir, "not-installed");
  const r = run("sh", [join(out, "install.sh"), "--prefix", prefix, join(bad, tgz)]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`checksum mismatch for ${tgz}: .*nothing was installed`));
  await writeFile(join(bad, "SHA256SUMS"), `${"0".repeat(64)}  atlas-0.0.1-linux-x64.tar.gz\n`);
  const unlisted = run("sh", [join(out, "install.sh"), "--prefix", prefix, join(bad, tgz)]);
  assert.equal(unlisted.code, 1);
  assert.match(unlisted.stderr, new RegExp(`SHA256SUMS has no line for ${tgz}`));
  await assert.rejects(stat(prefix), { code: "ENOENT" });
});

test("release refuses a binary of another version", async () => {
  assert.ok(dir, "needs the directory of the first test");
  const stub = join(dir, "old-atlas");
  await writeFile(stub, "#!/bin/sh\necho 'atlas 0.0.1 (commit 0123456789ab)'\n", { mode: 0o755 });
  const r = run(process.execPath, ["scripts/release.mjs", "--binary", stub, "--out", join(dir, "old")]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`is atlas 0\\.0\\.1 but package\\.json says ${VERSION.replaceAll(".", "\\.")}`));
});
