// Runtime half of the standalone-binary scheme: this file is NOT run by the build; it is bundled
// into dist/atlas and replaces the native-addon loaders of @matrixai/quic and libsql (see
// scripts/sea/plugin.mjs, which wires it in).
//
// A Node single-executable application (SEA) can only `require()` built-in modules, and the OS can
// only dlopen() a real file. So each addon's `.node` file travels inside the executable as a SEA
// asset and, on first use, is written once to a per-user cache file whose name contains the
// SHA-256 of its content, then loaded with `process.dlopen()`:
//
//   $XDG_CACHE_HOME/atlas/<package>-<sha256[0:32]>.node     (XDG_CACHE_HOME must be absolute)
//   ~/.cache/atlas/…                                         (when XDG_CACHE_HOME is unset)
//   %LOCALAPPDATA%\atlas\cache\…                             (Windows, when XDG_CACHE_HOME is unset)
//   <os.tmpdir()>/atlas-<uid>/…                              (fallback if the above fails)
//
// Concurrency: the file is written to a unique temp name in the same directory, fsync'ed and
// renamed over the final name, so a process never sees a half-written file; two processes starting
// at once both write a temp file and the last rename wins with identical bytes. A cached file is
// reused when it exists with the expected size (the content hash is in its name and it only ever
// appears complete, by rename). Old files from previous versions are not pruned.
//
// Nothing here runs at start-up: this module is only reached through the lazily imported native
// packages, so `atlas --version` / `--help` never touch the cache (scripts/build.mjs checks that).

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { randomBytes } from "node:crypto";
import sea from "node:sea";

/** Exports of the addons already loaded in this process, by asset key. */
const loaded = new Map();

/**
 * Loads one native addon embedded as a SEA asset and returns its exports (what `require()` of the
 * `.node` file would return).
 * @param {{ name: string, asset: string, file: string, size: number, sha256: string }} spec
 *   built by scripts/sea/plugin.mjs: package name, SEA asset key, cache file name, byte size, hash.
 */
export function loadNative(spec) {
  const done = loaded.get(spec.asset);
  if (done) return done;
  if (!sea.isSea()) {
    throw new Error(
      `atlas: the ${spec.name} addon is embedded for the standalone binary only; this bundle is not running as one`,
    );
  }
  const failures = [];
  for (const { dir, shared } of cacheDirs()) {
    let file;
    try {
      file = materialize(dir, shared, spec);
    } catch (err) {
      failures.push(`${dir}: ${err.message}`);
      continue;
    }
    try {
      const mod = { exports: {} };
      // Same as what Module._extensions[".node"] does for require("x.node").
      process.dlopen(mod, file);
      loaded.set(spec.asset, mod.exports);
      return mod.exports;
    } catch (err) {
      // e.g. a cache directory on a noexec mount: try the next candidate directory.
      failures.push(`${file}: ${err.message}`);
    }
  }
  throw new Error(`atlas: cannot load the native addon ${spec.name}: ${failures.join("; ")}`);
}

/** Candidate cache directories, best first; `shared` marks the one under the system temp dir. */
function cacheDirs() {
  const dirs = [];
  const xdg = process.env.XDG_CACHE_HOME;
  if (xdg && path.isAbsolute(xdg)) {
    dirs.push({ dir: path.join(xdg, "atlas"), shared: false });
  } else if (process.platform === "win32" && process.env.LOCALAPPDATA) {
    dirs.push({ dir: path.join(process.env.LOCALAPPDATA, "atlas", "cache"), shared: false });
  } else {
    let home = "";
    try {
      home = os.homedir();
    } catch {
      // No home directory (e.g. a system user): only the temp fallback remains.
    }
    if (home) dirs.push({ dir: path.join(home, ".cache", "atlas"), shared: false });
  }
  dirs.push({ dir: path.join(os.tmpdir(), `atlas-${userTag()}`), shared: true });
  return dirs;
}

function userTag() {
  if (typeof process.getuid === "function") return String(process.getuid());
  try {
    return os.userInfo().username.replace(/[^A-Za-z0-9._-]/g, "_");
  } catch {
    return "user";
  }
}

/**
 * Makes sure `dir/spec.file` holds the addon and returns its path. Creates the directory (0700)
 * and refuses one that another user owns or that anyone else can write to (in a shared temp dir
 * someone could otherwise plant a library; group-writable is tolerated only outside it, since
 * umask 002 is common with per-user groups). Then writes the file atomically if it is missing.
 */
function materialize(dir, shared, spec) {
  mkdirs(dir);
  if (process.platform !== "win32") {
    const st = fs.lstatSync(dir);
    if (!st.isDirectory()) throw new Error("not a directory");
    if (typeof process.getuid === "function" && st.uid !== process.getuid()) throw new Error("owned by another user");
    if (st.mode & (shared ? 0o022 : 0o002)) throw new Error("writable by other users");
  }
  const file = path.join(dir, spec.file);
  if (hasExpectedSize(file, spec.size)) return file;

  // getRawAsset() returns the bytes mapped in the executable, without a copy. Read-only use.
  const data = new Uint8Array(sea.getRawAsset(spec.asset));
  if (data.byteLength !== spec.size) {
    throw new Error(`embedded asset ${spec.asset} has ${data.byteLength} bytes, expected ${spec.size}`);
  }
  const tmp = `${file}.${process.pid}-${randomBytes(6).toString("hex")}.tmp`;
  const fd = fs.openSync(tmp, "wx", 0o755);
  try {
    for (let off = 0; off < data.byteLength;) off += fs.writeSync(fd, data, off, data.byteLength - off);
    fs.fsyncSync(fd);
  } catch (err) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  fs.closeSync(fd);
  try {
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    // Windows cannot replace a file another process has loaded; if that process put the right
    // file there, use it.
    if (!hasExpectedSize(file, spec.size)) throw err;
  }
  return file;
}

/**
 * `mkdir -p` with mode 0700. Not fs.mkdirSync({ recursive: true }): Node 20's spins forever when
 * mkdir fails with ENOENT under an existing parent (e.g. XDG_CACHE_HOME=/proc/x).
 */
function mkdirs(dir, depth = 0) {
  try {
    fs.mkdirSync(dir, { mode: 0o700 });
  } catch (err) {
    if (err.code === "EEXIST") return;
    const parent = path.dirname(dir);
    if (err.code !== "ENOENT" || parent === dir || depth > 64) throw err;
    mkdirs(parent, depth + 1);
    try {
      fs.mkdirSync(dir, { mode: 0o700 });
    } catch (err2) {
      if (err2.code !== "EEXIST") throw err2;
    }
  }
}

function hasExpectedSize(file, size) {
  try {
    const st = fs.statSync(file);
    return st.isFile() && st.size === size;
  } catch (err) {
    if (err.code === "ENOENT") return false;
    throw err;
  }
}
