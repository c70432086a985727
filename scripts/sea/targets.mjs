// Build-time knowledge about target platforms: which npm package carries each native addon for a
// given <platform>-<arch>, and how to check that a Node binary fits the target. Used by
// scripts/build.mjs and scripts/sea/plugin.mjs.

import fs from "node:fs";
import path from "node:path";
import { createHash } from "node:crypto";

/** Targets we know how to name. `quic` lists @matrixai/quic-<suffix> candidates in the order
 * @matrixai/quic's own loader (dist/native/quiche.js) tries them; `libsql` is the @libsql/<suffix>
 * package that libsql's requireNative() picks on a glibc system (Node's official Linux binaries
 * are glibc builds). */
export const TARGETS = {
  "linux-x64": { quic: ["linux-x64"], libsql: "linux-x64-gnu" },
  "linux-arm64": { quic: ["linux-arm64"], libsql: "linux-arm64-gnu" },
  "linux-arm": { quic: ["linux-arm"], libsql: "linux-arm-gnueabihf" },
  "darwin-x64": {
    quic: ["darwin-x64", "darwin-x64+arm64", "darwin-arm64+x64", "darwin-universal"],
    libsql: "darwin-x64",
  },
  "darwin-arm64": {
    quic: ["darwin-arm64", "darwin-arm64+x64", "darwin-x64+arm64", "darwin-universal"],
    libsql: "darwin-arm64",
  },
  "win32-x64": { quic: ["win32-x64"], libsql: "win32-x64-msvc" },
  "win32-arm64": { quic: ["win32-arm64"], libsql: null },
};

export const hostTarget = `${process.platform}-${process.arch}`;

/** A build failure with a one-line explanation (e.g. a missing piece for the target); build.mjs
 * prints `message` alone, without a stack trace. */
export class BuildError extends Error {}

function readJson(file) {
  return JSON.parse(fs.readFileSync(file, "utf8"));
}

/**
 * Finds the `.node` file of one native addon for `target` in `<root>/node_modules` and describes it
 * for the runtime loader (scripts/sea/native-loader.mjs). Throws BuildError with a one-line
 * explanation when it is not installed.
 * @param {"quic"|"libsql"} addon
 */
export function locateAddon(root, addon, target) {
  if (addon === "udp") return locateUdpAddon(root, target);
  const t = TARGETS[target];
  const nm = path.join(root, "node_modules");
  const owner = addon === "quic" ? "@matrixai/quic" : "libsql";
  const ownerPkg = readJson(path.join(nm, owner, "package.json"));
  const published = Object.keys(ownerPkg.optionalDependencies ?? {});
  const candidates = addon === "quic"
    ? t.quic.map((s) => `@matrixai/quic-${s}`)
    : t.libsql
    ? [`@libsql/${t.libsql}`]
    : [];

  for (const name of candidates) {
    const dir = path.join(nm, name);
    if (!fs.existsSync(path.join(dir, "package.json"))) continue;
    const pkg = readJson(path.join(dir, "package.json"));
    const file = path.join(dir, pkg.main ?? "index.node");
    if (!file.endsWith(".node") || !fs.existsSync(file)) {
      throw new BuildError(`${name} in node_modules has no .node file at ${path.relative(root, file)}`);
    }
    return describeAddon(name, file);
  }

  // Not installed: say whether the registry has one at all, and how to get it.
  const wanted = candidates[0] ?? `${owner} addon for ${target}`;
  const major = ownerPkg.version.split(".")[0];
  const known = REALLY_PUBLISHED[owner]?.[major];
  if (
    known
      ? !known.some((s) => candidates.includes(`${addonPrefix(owner)}${s}`))
      : !published.some((n) => candidates.includes(n))
  ) {
    const ships = known ?? published.map((n) => n.slice(addonPrefix(owner).length));
    throw new BuildError(
      `${owner} ${known ? `${major}.x` : ownerPkg.version} ships a prebuilt addon for ${
        ships.join(", ")
      } only; no ${wanted} in node_modules`,
    );
  }
  const name = candidates.find((
    n,
  ) => (known ? known.some((s) => n === `${addonPrefix(owner)}${s}`) : published.includes(n)));
  // --force: npm refuses a package whose "os"/"cpu" do not match this machine otherwise.
  throw new BuildError(
    `no ${name} in node_modules (the ${owner} addon for ${target}); get it with: npm install --no-save --force ${name}@${ownerPkg.version}`,
  );
}

/** Our own addon, built from native/udp/atlas_udp.c by scripts/build-udp.mjs for this machine only. */
function locateUdpAddon(root, target) {
  const file = path.join(root, "build", "atlas_udp.node");
  if (target !== hostTarget) throw new BuildError(`atlas_udp is built for ${hostTarget} only`);
  if (!fs.existsSync(file)) throw new BuildError("build/atlas_udp.node is not built");
  return describeAddon("atlas_udp", file);
}

/** What the runtime loader needs to know of one `.node` file (scripts/sea/native-loader.mjs). */
function describeAddon(name, file) {
  const bytes = fs.readFileSync(file);
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  const base = name.replace(/^@/, "").replace(/[^A-Za-z0-9._-]+/g, "-");
  return {
    name,
    path: file,
    // SEA asset key, and the cache file name the runtime loader writes (hash in the name).
    asset: `native/${name}/${path.basename(file)}`,
    file: `${base}-${sha256.slice(0, 32)}.node`,
    size: bytes.length,
    sha256,
  };
}

const addonPrefix = (owner) => (owner === "libsql" ? "@libsql/" : `${owner}-`);

/** What the npm registry really has, where a package's optionalDependencies promise more:
 * @matrixai/quic 2.x lists darwin and win32 addon packages, but only @matrixai/quic-linux-x64 was
 * published at 2.x (the others stop at 1.2.12). Keyed by owner package, then major version. */
const REALLY_PUBLISHED = {
  "@matrixai/quic": { 2: ["linux-x64"] },
};

// Executable formats: platform and CPU as read from the file header.
const ELF_MACHINES = { 0x3e: "x64", 0xb7: "arm64", 0x28: "arm" };
const MACHO_CPUS = { 0x01000007: "x64", 0x0100000c: "arm64" };
const PE_MACHINES = { 0x8664: "x64", 0xaa64: "arm64" };

/** Reads platform/arch from an executable's header (ELF, Mach-O thin or fat, PE); null if unknown. */
function executableKind(buf) {
  if (buf.readUInt32BE(0) === 0x7f454c46) {
    return { platform: "linux", arch: ELF_MACHINES[buf.readUInt16LE(18)] };
  }
  const m = buf.readUInt32LE(0);
  if (m === 0xfeedfacf) return { platform: "darwin", arch: MACHO_CPUS[buf.readUInt32LE(4)] };
  if (buf.readUInt32BE(0) === 0xcafebabe) return { platform: "darwin", arch: "universal" };
  if (buf.toString("latin1", 0, 2) === "MZ") {
    const pe = buf.readUInt32LE(0x3c);
    if (buf.toString("latin1", pe, pe + 4) === "PE\0\0") {
      return { platform: "win32", arch: PE_MACHINES[buf.readUInt16LE(pe + 4)] };
    }
  }
  return null;
}

export const SEA_FUSE = "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2";

/**
 * Checks that `file` is a Node binary usable for `target`: right executable format and CPU, has an
 * unflipped SEA fuse (so it is an official-style build with SEA support and nothing injected yet),
 * and, when its version can be read from the binary, the same version as `blobNodeVersion` (the
 * SEA blob must be produced by the same Node version it is injected into). Throws BuildError.
 * Returns the version found in the binary, or null.
 */
export function checkNodeBinary(file, target, blobNodeVersion) {
  if (!fs.existsSync(file)) throw new BuildError(`Node binary ${file} does not exist`);
  const buf = fs.readFileSync(file);
  const kind = executableKind(buf);
  const [platform, arch] = target.split("-");
  if (!kind || kind.platform !== platform || (kind.arch !== arch && kind.arch !== "universal")) {
    const got = kind ? `${kind.platform}-${kind.arch ?? "unknown cpu"}` : "not an executable";
    throw new BuildError(`--node-binary ${file} is ${got}, not a ${target} Node binary`);
  }
  const fuse = buf.indexOf(`${SEA_FUSE}:`);
  if (fuse < 0) {
    throw new BuildError(`Node binary ${file} has no SEA fuse (not a Node >= 20 build with single-executable support)`);
  }
  if (buf[fuse + SEA_FUSE.length + 1] !== 0x30) {
    throw new BuildError(`Node binary ${file} already has a SEA blob injected`);
  }
  // process.release.sourceUrl is compiled in as ".../download/release/vX.Y.Z/...".
  const at = buf.indexOf("/download/release/v");
  const m = at < 0 ? null : /^\/download\/release\/(v\d+\.\d+\.\d+)\//.exec(buf.toString("latin1", at, at + 64));
  const version = m ? m[1] : null;
  const [major, minor] = (version ?? "v99.0").slice(1).split(".").map(Number);
  if (major < 20 || (major === 20 && minor < 12)) {
    throw new BuildError(
      `Node binary ${file} is ${version}; the standalone binary needs Node >= 20.12 (SEA assets, node:sea)`,
    );
  }
  if (version && blobNodeVersion && version !== blobNodeVersion) {
    throw new BuildError(
      `--node-binary ${file} is Node ${version} but this build runs Node ${blobNodeVersion}; the SEA blob must come from the same version: run the build with Node ${version}`,
    );
  }
  return version;
}
