// The commit `atlas --version` names, decided when the code is bundled (scripts/bundle.mjs,
// scripts/build.mjs pass it to esbuild as `__ATLAS_COMMIT__`):
//   $ATLAS_COMMIT when set (a build from an unpacked source archive can say where it came from),
//   else the checkout's HEAD (12 hex digits), with "-dirty" when tracked files differ from it,
//   else "unknown": no git, or this tree is not the top of a checkout (an archive unpacked inside
//   some other repository must not be labelled with that repository's commit).
import { execFileSync } from "node:child_process";
import fs from "node:fs";

export function sourceCommit(root) {
  if (process.env.ATLAS_COMMIT) return process.env.ATLAS_COMMIT;
  const git = (...args) =>
    execFileSync("git", ["-C", root, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  try {
    if (fs.realpathSync(git("rev-parse", "--show-toplevel")) !== fs.realpathSync(root)) return "unknown";
    const sha = git("rev-parse", "--short=12", "HEAD");
    return git("status", "--porcelain", "--untracked-files=no") ? `${sha}-dirty` : sha;
  } catch {
    return "unknown";
  }
}
