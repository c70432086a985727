/** The commit `atlas --version` names (scripts/commit.mjs), decided when the code is bundled. */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "./helpers/cli.ts";
// @ts-expect-error: a plain .mjs script without type declarations
import { sourceCommit } from "../scripts/commit.mjs";

const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

test("a checkout names its HEAD in 12 hex digits, with -dirty when tracked files changed", (t) => {
  let head: string;
  try {
    head = execFileSync("git", ["-C", ROOT, "rev-parse", "HEAD"], { encoding: "utf8", stdio: "pipe" }).trim();
  } catch {
    return t.skip("not run from a git checkout");
  }
  const dirty = execFileSync("git", ["-C", ROOT, "status", "--porcelain", "--untracked-files=no"], {
    encoding: "utf8",
  }) !== "";
  assert.equal(sourceCommit(ROOT), head.slice(0, 12) + (dirty ? "-dirty" : ""));
});

test("outside a checkout of Atlas the commit is unknown", async () => {
  const plain = await mkdtemp(join(tmpdir(), "atlas-commit-"));
  dirs.push(plain);
  assert.equal(sourceCommit(plain), "unknown");
  execFileSync("git", ["init", "-q", plain]);
  await mkdir(join(plain, "atlas-src"));
  assert.equal(sourceCommit(join(plain, "atlas-src")), "unknown");
});

test("$ATLAS_COMMIT names the commit of a build from a source archive", () => {
  const saved = process.env.ATLAS_COMMIT;
  process.env.ATLAS_COMMIT = "0123456789ab";
  try {
    assert.equal(sourceCommit(ROOT), "0123456789ab");
  } finally {
    if (saved === undefined) delete process.env.ATLAS_COMMIT;
    else process.env.ATLAS_COMMIT = saved;
  }
});
