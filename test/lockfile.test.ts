/**
 * The lockfile guard (scripts/check-lockfile.mjs) that `npm test` runs first: a version-less
 * placeholder entry or a lock that disagrees with package.json must fail it, links must not.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
// @ts-expect-error: a plain .mjs script without type declarations
import { lockfileFaults } from "../scripts/check-lockfile.mjs";

const manifest = { dependencies: { a: "^1.0.0" }, devDependencies: { b: "^2.0.0" } };
const soundLock = () => ({
  lockfileVersion: 3,
  packages: {
    "": { dependencies: { a: "^1.0.0" }, devDependencies: { b: "^2.0.0" } },
    "node_modules/a": { version: "1.2.0" },
    "node_modules/b": { version: "2.0.1", dev: true },
    "node_modules/linked": { resolved: "packages/linked", link: true },
  },
});

test("a lock whose entries all have versions and whose root matches package.json passes", () => {
  assert.deepEqual(lockfileFaults(manifest, soundLock()), []);
});

test("a version-less placeholder entry is reported by its path", () => {
  const lock = soundLock() as { packages: Record<string, object> };
  lock.packages["node_modules/a/node_modules/@x/darwin-arm64"] = { optional: true };
  const faults = lockfileFaults(manifest, lock);
  assert.equal(faults.length, 1);
  assert.match(faults[0], /^node_modules\/a\/node_modules\/@x\/darwin-arm64 has no version/);
});

test("a dependency the lock lacks or ranges differently from package.json is reported", () => {
  const faults = lockfileFaults({ ...manifest, dependencies: { a: "^1.1.0", c: "^3.0.0" } }, soundLock());
  assert.deepEqual(faults, [
    "a is ^1.1.0 in package.json but ^1.0.0 in the lockfile",
    "package.json dependencies has c@^3.0.0, the lockfile does not",
  ]);
});

test("the command exits 1 with one line per fault, and 0 on the repository's own lock", async () => {
  const dir = await mkdtemp(join(tmpdir(), "atlas-lock-"));
  try {
    const lock = soundLock() as { packages: Record<string, object> };
    lock.packages["node_modules/ghost"] = { optional: true };
    await writeFile(join(dir, "package.json"), JSON.stringify(manifest));
    await writeFile(join(dir, "package-lock.json"), JSON.stringify(lock));
    const bad = spawnSync(process.execPath, ["scripts/check-lockfile.mjs", dir], { encoding: "utf8" });
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /^package-lock\.json: node_modules\/ghost has no version/m);
    const good = spawnSync(process.execPath, ["scripts/check-lockfile.mjs"], { encoding: "utf8" });
    assert.equal(good.status, 0, good.stderr);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
