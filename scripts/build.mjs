// Builds the standalone `atlas` executable: a Node.js single-executable application (SEA).
//
//   node scripts/build.mjs                      -> dist/atlas           (this platform, this `node`)
//   node scripts/build.mjs --target darwin-arm64 --node-binary ./node-v20.20.2-darwin-arm64/bin/node
//                                               -> dist/atlas-darwin-arm64 (dist/atlas-win32-x64.exe)
//   options: --entry FILE (default cli.ts), --strip (Linux host only: strip the copied node binary,
//            ≈12 MB smaller, no native symbols in crash backtraces), --skip-smoke, --keep-temp
//
// How it works (all offline, with the devDependencies esbuild and postject):
// 1. esbuild bundles the entry and everything it imports (npm packages included) into ONE CommonJS
//    file: Node 20's SEA runs a single CommonJS script whose `require()` only knows built-ins.
//    keepNames is on because @matrixai/quic uses class names as event types. Dynamic
//    `await import("…")` of bundled modules becomes a lazy call of an esbuild init function, so
//    lazily imported modules (QUIC, libSQL) still load only when a command needs them.
// 2. scripts/sea/plugin.mjs swaps the native-addon loaders of @matrixai/quic and libsql for
//    scripts/sea/native-loader.mjs, which reads the `.node` file from a SEA asset, writes it once
//    to a content-hashed file under ~/.cache/atlas (atomically) and process.dlopen()s it. Only the
//    addons the bundle actually reaches are embedded, taken from the target's npm packages
//    (@matrixai/quic-<target>, @libsql/<target>-…).
// 3. `node --experimental-sea-config` turns bundle + addons into a blob; the blob is injected with
//    postject into a copy of the target's node binary (flipping the SEA sentinel fuse), and the
//    result is installed into dist/ by rename. Intermediate files live in a temp dir, removed at
//    the end; nothing but the executable is written to dist/.
// 4. For the host platform, a smoke test runs `<exe> --version` with an empty cache/home/tmp and
//    fails the build if it errors or if it extracted any native addon (start-up must stay lazy).

import { build as esbuild } from "esbuild";
import postject from "postject";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import { isBuiltin } from "node:module";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { buildUdpAddon } from "./build-udp.mjs";
import { sourceCommit } from "./commit.mjs";
import { seaPlugin } from "./sea/plugin.mjs";
import { BuildError, checkNodeBinary, hostTarget, SEA_FUSE, TARGETS } from "./sea/targets.mjs";

const root = fileURLToPath(new URL("..", import.meta.url));
const loaderPath = fileURLToPath(new URL("./sea/native-loader.mjs", import.meta.url));

const USAGE = `usage: node scripts/build.mjs [--entry FILE] [--target PLATFORM-ARCH] [--node-binary PATH]
                              [--strip] [--skip-smoke] [--keep-temp]
targets: ${Object.keys(TARGETS).join(", ")} (default: ${hostTarget})`;

function parseOptions() {
  const { values } = parseArgs({
    options: {
      entry: { type: "string", default: path.join(root, "cli.ts") },
      target: { type: "string" },
      "node-binary": { type: "string" },
      strip: { type: "boolean", default: false },
      "skip-smoke": { type: "boolean", default: false },
      "keep-temp": { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const target = values.target ?? hostTarget;
  if (!TARGETS[target]) throw new BuildError(`unknown target ${target}; known: ${Object.keys(TARGETS).join(", ")}`);
  const isHost = target === hostTarget;
  // null = missing; reported by main() together with any missing addon package.
  const nodeBinary = values["node-binary"] ? path.resolve(values["node-binary"]) : isHost ? process.execPath : null;
  if (values.strip && !(isHost && process.platform === "linux")) {
    throw new BuildError("--strip is supported for a Linux host target only");
  }
  const exe = `atlas${values.target ? `-${target}` : ""}${target.startsWith("win32") ? ".exe" : ""}`;
  return {
    entry: path.resolve(values.entry),
    target,
    isHost,
    nodeBinary,
    strip: values.strip,
    smoke: isHost && !values["skip-smoke"],
    keepTemp: values["keep-temp"],
    outFile: path.join(root, "dist", exe),
  };
}

/**
 * Step 1+2: one CommonJS bundle with the native loaders replaced. Returns the embedded addons.
 * `problems`: missing pieces found so far; any addon package missing for the target is added and
 * all of them are reported in one line.
 */
async function bundle(opts, outfile, problems) {
  const used = new Map();
  const missing = [...problems];
  const cannot = () => new BuildError(`cannot build for ${opts.target}: ${missing.join("; ")}`);
  let result;
  try {
    result = await esbuild({
      absWorkingDir: root,
      entryPoints: [opts.entry],
      nodePaths: [path.join(root, "node_modules")], // lets an entry outside the repo use its packages
      outfile,
      bundle: true,
      platform: "node",
      format: "cjs", // Node 20 SEA: CommonJS only. So: no top-level await anywhere in the graph.
      target: `node${process.versions.node.split(".")[0]}`,
      keepNames: true,
      // Same TypeScript settings as the project whatever the entry's location (verbatimModuleSyntax
      // matters: it decides which imports are kept).
      tsconfig: path.join(root, "tsconfig.json"),
      // import.meta is empty in CommonJS; give code that reads it something sensible. In a SEA,
      // __filename/__dirname are the executable's own path/directory.
      define: {
        "import.meta.url": "__atlas_import_meta_url",
        "import.meta.filename": "__filename",
        "import.meta.dirname": "__dirname",
        __ATLAS_COMMIT__: JSON.stringify(sourceCommit(root)), // named by `atlas --version`
      },
      banner: { js: 'var __atlas_import_meta_url = require("node:url").pathToFileURL(__filename).href;' },
      // Not minified: start-up measured the same either way, and stack traces stay readable.
      legalComments: "eof",
      metafile: true,
      logLevel: "warning",
      plugins: [seaPlugin({ root, target: opts.target, loaderPath, used, missing })],
    });
  } catch (err) {
    if (missing.length) throw cannot();
    throw new BuildError(
      `bundling ${path.relative(root, opts.entry) || opts.entry} failed (${err.errors?.length ?? "?"} error(s) above)`,
    );
  }
  if (missing.length) throw cannot();

  // A SEA's require() loads built-in modules only: any other external left in the bundle would
  // fail at run time, so refuse it now.
  for (const out of Object.values(result.metafile.outputs)) {
    for (const imp of out.imports) {
      if (imp.external && !isBuiltin(imp.path)) {
        throw new BuildError(
          `the bundle still needs ${imp.path} (${imp.kind}) at run time, which a single executable cannot load`,
        );
      }
    }
  }
  // `import()` that esbuild could not resolve into the bundle stays a real dynamic import, which
  // V8 code cache in a SEA does not support.
  const realDynamicImport = Object.values(result.metafile.outputs).some((o) =>
    o.imports.some((i) => i.kind === "dynamic-import")
  );
  return { addons: [...used.values()], realDynamicImport };
}

function run(cmd, args, options = {}) {
  const r = spawnSync(cmd, args, { encoding: "utf8", ...options });
  if (r.error) throw new BuildError(`${path.basename(cmd)}: ${r.error.message}`);
  if (r.status !== 0) {
    throw new BuildError(
      `${path.basename(cmd)} ${args.join(" ")} exited with ${r.status ?? r.signal}: ${(r.stderr || r.stdout).trim()}`,
    );
  }
  return r;
}

/** Step 3: blob -> copy of node -> inject. Returns the executable's path in `tmp`. */
async function makeExecutable(opts, tmp, bundlePath, addons, useCodeCache) {
  const blob = path.join(tmp, "sea-prep.blob");
  const config = {
    main: bundlePath,
    output: blob,
    disableExperimentalSEAWarning: true,
    useSnapshot: false,
    // Code cache is V8-build specific: only when the blob is made by the binary it goes into.
    useCodeCache,
    assets: Object.fromEntries(addons.map((a) => [a.asset, a.path])),
  };
  const configPath = path.join(tmp, "sea-config.json");
  fs.writeFileSync(configPath, JSON.stringify(config, null, 2));
  // On the host, let the target binary make its own blob (versions match by construction). For
  // another platform the running node makes it; checkNodeBinary() insisted on the same version.
  run(opts.isHost ? opts.nodeBinary : process.execPath, ["--experimental-sea-config", configPath], { cwd: tmp });

  const exe = path.join(tmp, path.basename(opts.outFile));
  fs.copyFileSync(opts.nodeBinary, exe);
  fs.chmodSync(exe, 0o755);
  if (opts.strip) run("strip", [exe]); // .dynsym stays: addons still find the napi_* symbols.
  const darwin = opts.target.startsWith("darwin");
  if (darwin && process.platform === "darwin") run("codesign", ["--remove-signature", exe]);

  // postject's LIEF (WebAssembly) reports harmless "Can't find string offset for section name
  // '.note…'" warnings about Node's ELF notes through console.warn; drop those, keep the rest.
  const warn = console.warn;
  console.warn = (...a) => void (/^warning: Can't find string offset/.test(String(a[0])) || warn(...a));
  try {
    await postject.inject(exe, "NODE_SEA_BLOB", fs.readFileSync(blob), {
      sentinelFuse: SEA_FUSE,
      machoSegmentName: darwin ? "NODE_SEA" : undefined,
    });
  } catch (err) {
    throw new BuildError(`postject could not inject the SEA blob into a copy of ${opts.nodeBinary}: ${err.message}`);
  } finally {
    console.warn = warn;
  }
  if (darwin) {
    if (process.platform === "darwin") run("codesign", ["--sign", "-", exe]);
    // Untested (no macOS here): injecting into a still-signed binary leaves its signature invalid.
    else {console.warn(
        `build: note: ${path.basename(opts.outFile)} is not validly signed; on macOS run \`codesign --sign - --force ${
          path.basename(opts.outFile)
        }\` before use, or build on macOS, where this script removes and re-adds the signature`,
      );}
  }

  return exe;
}

/** Install by rename, so a running dist/atlas is never overwritten in place (ETXTBSY) and a
 * failed build never leaves a half-written executable. */
function install(exe, outFile) {
  fs.mkdirSync(path.dirname(outFile), { recursive: true });
  const staging = path.join(path.dirname(outFile), `.${path.basename(outFile)}.${process.pid}.tmp`);
  try {
    fs.copyFileSync(exe, staging);
    fs.chmodSync(staging, 0o755);
    fs.renameSync(staging, outFile);
  } finally {
    fs.rmSync(staging, { force: true });
  }
}

/** Step 4: `--version` must work and must not extract/dlopen any addon (lazy start-up). */
function smokeTest(exe, tmp) {
  const sandbox = path.join(tmp, "smoke");
  const env = { ...process.env };
  for (
    const [k, sub] of [["XDG_CACHE_HOME", "cache"], ["HOME", "home"], ["TMPDIR", "tmp"], ["LOCALAPPDATA", "appdata"]]
  ) {
    env[k] = path.join(sandbox, sub);
    fs.mkdirSync(env[k], { recursive: true });
  }
  const t0 = process.hrtime.bigint();
  const r = spawnSync(exe, ["--version"], { env, encoding: "utf8", cwd: sandbox, timeout: 30_000 });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) {
    throw new BuildError(
      `smoke test: ${path.basename(exe)} --version exited with ${r.status ?? r.signal ?? r.error?.message}: ${
        (r.stderr || "").trim()
      }`,
    );
  }
  const extracted = fs.readdirSync(sandbox, { recursive: true }).filter((f) => String(f).endsWith(".node"));
  if (extracted.length) {
    throw new BuildError(
      `smoke test: --version loaded native addons at start-up (${
        extracted.join(", ")
      }): some module imported at start-up statically imports @matrixai/quic or @libsql/client; import them lazily with await import()`,
    );
  }
  return { line: r.stdout.trim().split("\n")[0], ms };
}

async function main() {
  const started = performance.now();
  const opts = parseOptions();
  if (!fs.existsSync(opts.entry)) throw new BuildError(`entry ${opts.entry} does not exist`);
  const problems = [];
  if (!opts.nodeBinary) {
    problems.push(
      `no Node binary for ${opts.target}: pass --node-binary PATH (the node executable of the Node ${process.version} ${opts.target} release)`,
    );
  } else {
    try {
      const version = checkNodeBinary(opts.nodeBinary, opts.target, opts.isHost ? null : process.version);
      if (!opts.isHost && !version) {
        console.warn(`build: note: cannot read the Node version of ${opts.nodeBinary}; it must be ${process.version}`);
      }
    } catch (err) {
      if (!(err instanceof BuildError)) throw err;
      problems.push(err.message);
    }
  }

  if (opts.isHost) buildUdpAddon(); // embedded when built (it is built for this machine only)
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "atlas-build-"));
  try {
    const bundlePath = path.join(tmp, "atlas.cjs");
    const { addons, realDynamicImport } = await bundle(opts, bundlePath, problems);
    const useCodeCache = opts.isHost && !realDynamicImport;
    const exe = await makeExecutable(opts, tmp, bundlePath, addons, useCodeCache);
    // Smoke-test before installing: a binary that fails it never reaches dist/.
    const smoke = opts.smoke ? smokeTest(exe, tmp) : null;
    install(exe, opts.outFile);

    const rel = path.relative(process.cwd(), opts.outFile) || opts.outFile;
    const mb = (n) => `${(n / 1e6).toFixed(1)} MB`;
    console.log(
      `build: ${rel} for ${opts.target} (${mb(fs.statSync(opts.outFile).size)}; bundle ${
        mb(fs.statSync(bundlePath).size)
      }; code cache ${useCodeCache ? "on" : "off"})`,
    );
    for (const a of addons) {
      console.log(`build:   embedded ${a.name} (${mb(a.size)}, sha256 ${a.sha256.slice(0, 12)}…)`);
    }
    if (addons.length === 0) console.log("build:   no native addon reached from the entry; none embedded");
    if (smoke) {
      console.log(
        `build:   smoke: \`--version\` -> ${JSON.stringify(smoke.line)} in ${smoke.ms.toFixed(0)} ms, no addon loaded`,
      );
    }
    console.log(`build: done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    if (opts.keepTemp) console.log(`build: intermediate files kept in ${tmp}`);
    else fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((err) => {
  if (
    err instanceof BuildError || err?.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" ||
    err?.code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE"
  ) {
    console.error(`build: ${err.message}`);
  } else {
    console.error(err);
  }
  process.exit(1);
});
