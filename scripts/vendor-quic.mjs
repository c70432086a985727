// Rebuilds vendor/matrixai-quic-<version>.tgz: the published @matrixai/quic tarball with its
// manifest's optionalDependencies trimmed to the platform addons the npm registry really has at
// that version. Why: docs/decisions.md, "Installing @matrixai/quic from a vendored tarball".
//
//   node scripts/vendor-quic.mjs [--version 2.0.9]
//
// It asks the registry (npm view / npm pack), so run it by hand when moving to another version,
// then regenerate the lockfile (`npm run lock`) and commit both. CI never runs it.

import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const root = fileURLToPath(new URL("..", import.meta.url));
const { values } = parseArgs({ options: { version: { type: "string", default: "2.0.9" } } });
const version = values.version;
// npm's own notices and 404 reports go nowhere: this script says what it did in its own lines.
const npm = (...args) =>
  execFileSync("npm", [...args, "--silent"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });

/** True when the registry serves `name` at exactly `version`. */
function published(name) {
  try {
    return JSON.parse(npm("view", `${name}@${version}`, "version", "--json") || "null") === version;
  } catch {
    return false; // E404: never published
  }
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), "atlas-vendor-"));
try {
  npm("pack", `@matrixai/quic@${version}`, "--pack-destination", work, "--ignore-scripts");
  const tgz = path.join(work, `matrixai-quic-${version}.tgz`);
  execFileSync("tar", ["xzf", tgz, "-C", work]);
  const manifestPath = path.join(work, "package", "package.json");
  const manifest = JSON.parse(fs.readFileSync(manifestPath, "utf8"));
  const kept = {};
  for (const [name, range] of Object.entries(manifest.optionalDependencies ?? {})) {
    if (published(name)) kept[name] = range;
    else console.log(`dropped ${name}@${range}: not on the registry`);
  }
  manifest.optionalDependencies = kept;
  fs.writeFileSync(manifestPath, JSON.stringify(manifest, null, 2) + "\n");
  // A tarball made by tar with fixed owner, order and mtime, so a rerun gives the same bytes.
  const out = path.join(root, "vendor", `matrixai-quic-${version}.tgz`);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  execFileSync("sh", [
    "-c",
    `tar --sort=name --owner=0 --group=0 --numeric-owner --mtime='1985-10-26 08:15Z' -cf - package | gzip -n -9 > "${out}"`,
  ], { cwd: work });
  console.log(`wrote ${path.relative(root, out)} (optionalDependencies: ${Object.keys(kept).join(", ") || "none"})`);
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}
