// Makes a release of the standalone binary for this machine (Linux only: the units are systemd's
// and linux-x64 is the only platform we can build, see README "Platforms"):
//
//   npm run release                                   build dist/atlas (scripts/build.mjs), package it
//   node scripts/release.mjs --binary dist/atlas      package an existing binary (no 20 s build)
//   options: --out DIR (default dist/release)
//
// Writes into DIR:
//   atlas-<version>-<platform>-<arch>.tar.gz   one directory of that name: atlas (the binary),
//                                              README.md, LICENSE, docs/operating.md,
//                                              systemd/atlas-{daemon,relay,bootstrap}.service and
//                                              completions/ when the binary has `atlas completion`
//   install.sh                                 scripts/install.sh: checks the sum, installs
//   SHA256SUMS                                 `sha256sum -c SHA256SUMS` checks both files
//
// The tarball is reproducible for a given binary: sorted entries, root:root, fixed modes and
// mtime ($SOURCE_DATE_EPOCH, else the commit's time), gzip without a timestamp. The binary itself
// is whatever scripts/build.mjs makes. SHA256SUMS is not signed: it detects a corrupt download,
// not a forged one served by the same host.

import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { createGzip } from "node:zlib";
import { hostTarget } from "./sea/targets.mjs";

const root = fileURLToPath(new URL("..", import.meta.url));
const UNITS = ["atlas-daemon.service", "atlas-relay.service", "atlas-bootstrap.service"];
/** `atlas completion <shell>` output -> file name in completions/ (what install.sh looks for). */
const COMPLETIONS = { bash: "atlas.bash", zsh: "_atlas", fish: "atlas.fish" };

class ReleaseError extends Error {}

function options() {
  const { values } = parseArgs({
    options: {
      binary: { type: "string" },
      out: { type: "string", default: path.join(root, "dist", "release") },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log("usage: node scripts/release.mjs [--binary PATH] [--out DIR]");
    process.exit(0);
  }
  return { binary: values.binary && path.resolve(values.binary), out: path.resolve(values.out) };
}

/** Run the binary with a throwaway cache (nothing it writes stays) and return stdout, or null. */
function runBinary(bin, args, sandbox) {
  const r = spawnSync(bin, args, {
    encoding: "utf8",
    env: { ...process.env, XDG_CACHE_HOME: path.join(sandbox, "cache"), ATLAS_HOME: path.join(sandbox, "home") },
    timeout: 30_000,
  });
  return r.status === 0 ? r.stdout : null;
}

/** The binary must be this checkout's version; say so when it is not from a clean commit. */
function checkVersion(bin, version, sandbox) {
  const out = runBinary(bin, ["--version"], sandbox);
  if (out === null) throw new ReleaseError(`${bin} --version failed: not a working atlas binary for this machine`);
  const m = /^atlas (\S+) \(commit (\S+)\)\n$/.exec(out);
  if (!m) {
    throw new ReleaseError(`${bin} --version printed ${JSON.stringify(out)}: built before versions named commits`);
  }
  if (m[1] !== version) {
    throw new ReleaseError(`${bin} is atlas ${m[1]} but package.json says ${version}: rebuild it (npm run build)`);
  }
  if (m[2] === "unknown" || m[2].endsWith("-dirty")) {
    console.warn(`release: warning: the binary names commit ${m[2]}: not built from a clean checkout`);
  }
  return out.trim();
}

/** completions/<file> for each shell `atlas completion <shell>` knows; none when the command is missing. */
function completions(bin, sandbox) {
  // Not the exit code: commander answers `--help` after an unknown command with the main help.
  if (!runBinary(bin, ["completion", "--help"], sandbox)?.startsWith("Usage: atlas completion")) {
    console.log("release: no `atlas completion` command in this binary: no shell completions packaged");
    return {};
  }
  const files = {};
  for (const [shell, file] of Object.entries(COMPLETIONS)) {
    const script = runBinary(bin, ["completion", shell], sandbox);
    if (script) files[file] = script;
    else console.log(`release: \`atlas completion ${shell}\` failed: no ${shell} completion packaged`);
  }
  return files;
}

/** SOURCE_DATE_EPOCH, else the time of the commit checked out, else now. */
function mtime() {
  if (process.env.SOURCE_DATE_EPOCH) return Number(process.env.SOURCE_DATE_EPOCH);
  const r = spawnSync("git", ["-C", root, "log", "-1", "--format=%ct"], { encoding: "utf8" });
  return r.status === 0 && r.stdout.trim() ? Number(r.stdout.trim()) : Math.floor(Date.now() / 1000);
}

/** tar (GNU) | gzip into `dest`, written under a temporary name and renamed when complete. */
async function tarball(stage, dir, dest) {
  const tar = spawn("tar", [
    "--sort=name",
    "--owner=0",
    "--group=0",
    "--numeric-owner",
    `--mtime=@${mtime()}`,
    "--format=gnu",
    "-C",
    stage,
    "-cf",
    "-",
    dir,
  ], { stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  tar.stderr.on("data", (d) => (err += d));
  const exited = new Promise((resolve) => tar.on("close", resolve));
  const part = `${dest}.${process.pid}.tmp`;
  try {
    await pipeline(
      tar.stdout,
      createGzip(), /* level 6: level 9 takes 4x the time for 0.7 % less */
      fs.createWriteStream(part),
    );
    const code = await exited;
    if (code !== 0) throw new ReleaseError(`tar exited with ${code}: ${err.trim()}`);
    fs.renameSync(part, dest);
  } finally {
    fs.rmSync(part, { force: true });
  }
}

async function sha256(file) {
  const h = createHash("sha256");
  await pipeline(fs.createReadStream(file), h);
  return h.digest("hex");
}

/** Copy `from` to `to` with exactly `mode` (the umask must not decide what ends up in the tarball). */
function place(from, to, mode, content) {
  fs.mkdirSync(path.dirname(to), { recursive: true, mode: 0o755 });
  if (content === undefined) fs.copyFileSync(from, to);
  else fs.writeFileSync(to, content);
  fs.chmodSync(to, mode);
}

async function main() {
  const started = performance.now();
  const opts = options();
  if (process.platform !== "linux") {
    throw new ReleaseError(`releases are made on Linux only (this is ${hostTarget}); see README "Platforms"`);
  }
  const { version } = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8"));
  let bin = opts.binary;
  if (!bin) {
    const r = spawnSync(process.execPath, [path.join(root, "scripts", "build.mjs")], { stdio: "inherit" });
    if (r.status !== 0) throw new ReleaseError("the build failed (above)");
    bin = path.join(root, "dist", "atlas");
  }
  if (!fs.existsSync(bin)) throw new ReleaseError(`no binary at ${bin} (npm run build makes dist/atlas)`);

  const name = `atlas-${version}-${hostTarget}`;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "atlas-release-"));
  try {
    const line = checkVersion(bin, version, tmp);
    const stage = path.join(tmp, "stage");
    const top = path.join(stage, name);
    place(bin, path.join(top, "atlas"), 0o755);
    for (const f of ["README.md", "LICENSE", "docs/operating.md"]) place(path.join(root, f), path.join(top, f), 0o644);
    for (const u of UNITS) place(path.join(root, "packaging", u), path.join(top, "systemd", u), 0o644);
    for (const [file, text] of Object.entries(completions(bin, tmp))) {
      place(null, path.join(top, "completions", file), 0o644, text);
    }
    for (const d of fs.readdirSync(stage, { recursive: true })) {
      const p = path.join(stage, d);
      if (fs.statSync(p).isDirectory()) fs.chmodSync(p, 0o755);
    }

    fs.mkdirSync(opts.out, { recursive: true });
    const tgz = `${name}.tar.gz`;
    await tarball(stage, name, path.join(opts.out, tgz));
    place(path.join(root, "scripts", "install.sh"), path.join(opts.out, "install.sh"), 0o755);
    const sums = [];
    for (const f of [tgz, "install.sh"].sort()) sums.push(`${await sha256(path.join(opts.out, f))}  ${f}\n`);
    fs.writeFileSync(path.join(opts.out, "SHA256SUMS"), sums.join(""));

    const rel = path.relative(process.cwd(), opts.out) || ".";
    const mb = (f) => `${(fs.statSync(path.join(opts.out, f)).size / 1e6).toFixed(1)} MB`;
    console.log(`release: ${line} -> ${rel}/${tgz} (${mb(tgz)}), ${rel}/install.sh, ${rel}/SHA256SUMS`);
    console.log(`release: done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((err) => {
  if (err instanceof ReleaseError || err?.code?.startsWith?.("ERR_PARSE_ARGS")) {
    console.error(`release: ${err.message}`);
  } else console.error(err);
  process.exit(1);
});
