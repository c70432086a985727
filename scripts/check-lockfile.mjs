// Guards package-lock.json against the two faults that once broke `npm ci` on fresh machines
// (docs/decisions.md, "Installing @matrixai/quic from a vendored tarball"):
//   1. a package entry without a version — npm writes such placeholders for optional packages the
//      registry did not serve, and a later npm crashes on them ("Invalid Version:");
//   2. a lockfile that disagrees with package.json (a dependency added, removed or re-ranged in
//      one and not the other).
// Entries that are links (`"link": true`) carry no version by design and are fine.
// Exit 0 and one line when the lock is sound; exit 1 with one line per fault otherwise.
//
//   node scripts/check-lockfile.mjs [DIR]     (DIR defaults to the repository root)

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const DEPENDENCY_FIELDS = ["dependencies", "devDependencies", "optionalDependencies", "peerDependencies"];

/** Every fault of `lock` against `manifest`, as one sentence each. Exported for the unit test. */
export function lockfileFaults(manifest, lock) {
  const faults = [];
  if (!lock.packages || typeof lock.packages !== "object") {
    return [
      `package-lock.json has no "packages" map (lockfileVersion ${
        lock.lockfileVersion ?? "?"
      }; npm 7 or later writes one)`,
    ];
  }
  for (const [key, entry] of Object.entries(lock.packages)) {
    if (key === "" || entry.link === true) continue;
    if (typeof entry.version !== "string" || entry.version === "") {
      faults.push(`${key} has no version (a placeholder npm wrote for a package the registry did not serve)`);
    }
  }
  const rootEntry = lock.packages[""] ?? {};
  for (const field of DEPENDENCY_FIELDS) {
    const wanted = manifest[field] ?? {};
    const locked = rootEntry[field] ?? {};
    for (const name of new Set([...Object.keys(wanted), ...Object.keys(locked)])) {
      if (wanted[name] === locked[name]) continue;
      if (!(name in locked)) faults.push(`package.json ${field} has ${name}@${wanted[name]}, the lockfile does not`);
      else if (!(name in wanted)) {
        faults.push(`the lockfile's ${field} has ${name}@${locked[name]}, package.json does not`);
      } else faults.push(`${name} is ${wanted[name]} in package.json but ${locked[name]} in the lockfile`);
    }
  }
  return faults;
}

function main() {
  const dir = process.argv[2] ?? fileURLToPath(new URL("..", import.meta.url));
  const read = (file) => JSON.parse(fs.readFileSync(path.join(dir, file), "utf8"));
  const faults = lockfileFaults(read("package.json"), read("package-lock.json"));
  if (faults.length === 0) {
    console.log("package-lock.json: every entry has a version and it matches package.json");
    return;
  }
  for (const fault of faults) console.error(`package-lock.json: ${fault}`);
  console.error("fix: change package.json, then `npm run lock` (never edit the lockfile by hand)");
  process.exitCode = 1;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) main();
