// esbuild plugin for the standalone binary (used by scripts/build.mjs). It:
//
// 1. Replaces the two native-addon loaders with virtual modules `atlas-sea-native:quic` and
//    `atlas-sea-native:libsql`, which call scripts/sea/native-loader.mjs with a description of the
//    target's `.node` file (SEA asset key, cache file name, size, hash):
//    - @matrixai/quic: the whole of `dist/native/quiche.js` (it finds its addon with
//      createRequire(import.meta.url), which cannot work in a bundle). It is matched by file path,
//      so every way of reaching it is covered: `@matrixai/quic`, `@matrixai/quic/native/index.js`,
//      `@matrixai/quic/native/quiche.js`, or quic's internal `#native/...` imports.
//    - libsql (used by @libsql/client's `file:` driver): in `index.js` and `promise.js`, the
//      dynamic `require(`@libsql/${target}`)` at the end of requireNative(). If a libsql update
//      changes that line, the build fails rather than ship a binary that cannot open a database.
//    - atlas_udp (our datagram I/O, src/transport/udp/): the whole of `addon-file.ts`, which
//      otherwise looks for build/atlas_udp.node beside the checkout. It is embedded when built for
//      the host target; for another target (or without a C compiler) the binary uses node:dgram.
//    The loader code is only reached when those packages are first imported (lazily, by the CLI).
// 2. Turns `await import("<built-in>")` into a lazy require() (keeps V8 code cache usable).
// 3. Stubs optional requires (ws's `bufferutil` / `utf-8-validate`, debug's `supports-color`) with modules that throw
//    MODULE_NOT_FOUND, which ws catches and then uses its JavaScript fallbacks.
//
// Which addons end up in the binary is decided by what the bundle reaches: `used` collects the
// descriptions of the virtual modules esbuild loaded; `missing` collects one-line explanations when
// the target's addon package is not installed.

import fs from "node:fs";
import { isBuiltin } from "node:module";
import { BuildError, locateAddon } from "./targets.mjs";

const QUICHE_JS = /[\\/]node_modules[\\/]@matrixai[\\/]quic[\\/]dist[\\/]native[\\/]quiche\.js$/;
const LIBSQL_JS = /[\\/]node_modules[\\/]libsql[\\/](index|promise)\.js$/;
const LIBSQL_REQUIRE = /require\(`@libsql\/\$\{target\}`\)/g;
const UDP_ADDON_FILE = /[\\/]src[\\/]transport[\\/]udp[\\/]addon-file\.ts$/;
const NS = "atlas-sea-native";

/**
 * @param {{ root: string, target: string, loaderPath: string,
 *           used: Map<string, object>, missing: string[] }} opts
 */
export function seaPlugin({ root, target, loaderPath, used, missing }) {
  return {
    name: "atlas-sea",
    setup(build) {
      build.onLoad({ filter: QUICHE_JS }, () => ({
        contents: `// Replaced by scripts/sea/plugin.mjs\nexport { default } from "${NS}:quic";\n`,
        loader: "js",
      }));

      build.onLoad({ filter: UDP_ADDON_FILE }, () => ({
        // An ES module (its importer is one): require() keeps the load lazy, at the first bind.
        contents: `// Replaced by scripts/sea/plugin.mjs\n` +
          `export function openAddonFile() { return require("${NS}:udp"); }\n`,
        loader: "js",
      }));

      build.onLoad({ filter: LIBSQL_JS }, async (args) => {
        const src = await fs.promises.readFile(args.path, "utf8");
        let count = 0;
        const contents = src.replace(LIBSQL_REQUIRE, () => {
          count++;
          return `require("${NS}:libsql")`;
        });
        if (count !== 1) {
          return {
            errors: [{
              text:
                `libsql's requireNative() no longer matches ${LIBSQL_REQUIRE} (${count} matches): update scripts/sea/plugin.mjs`,
            }],
          };
        }
        return { contents, loader: "js" };
      });

      build.onResolve(
        { filter: new RegExp(`^${NS}:`) },
        (args) => ({ path: args.path.slice(NS.length + 1), namespace: NS }),
      );

      build.onLoad({ filter: /.*/, namespace: NS }, (args) => {
        let spec;
        try {
          spec = locateAddon(root, args.path, target);
        } catch (err) {
          if (!(err instanceof BuildError)) throw err;
          // Optional: without it the node uses node:dgram (src/transport/udp/addon.ts).
          if (args.path === "udp") return { contents: "module.exports = null;\n", loader: "js" };
          missing.push(err.message);
          return { contents: `throw new Error(${JSON.stringify(err.message)});`, loader: "js" };
        }
        used.set(args.path, spec);
        const runtime = { name: spec.name, asset: spec.asset, file: spec.file, size: spec.size, sha256: spec.sha256 };
        return {
          contents: `// ${spec.name} for ${target}, embedded as SEA asset ${spec.asset}\n` +
            `module.exports = require(${JSON.stringify(loaderPath)}).loadNative(${JSON.stringify(runtime)});\n`,
          loader: "js",
          resolveDir: root,
        };
      });

      // `await import("node:fs")` would stay a real import() in CommonJS output, and V8 code cache
      // in a SEA cannot run import(). Route dynamic imports of built-ins through a tiny CommonJS
      // module so esbuild turns them into a lazy require() like any other dynamic import.
      build.onResolve(
        { filter: /^[a-z0-9_:\/]+$/ },
        (args) =>
          args.kind === "dynamic-import" && isBuiltin(args.path)
            ? { path: args.path, namespace: "atlas-sea-builtin" }
            : undefined,
      );
      build.onLoad({ filter: /.*/, namespace: "atlas-sea-builtin" }, (args) => ({
        contents: `module.exports = require(${JSON.stringify(args.path)});\n`,
        loader: "js",
      }));

      build.onResolve(
        { filter: /^(bufferutil|utf-8-validate|supports-color)$/ },
        (args) => ({ path: args.path, namespace: "atlas-sea-stub" }),
      );
      build.onLoad({ filter: /.*/, namespace: "atlas-sea-stub" }, (args) => ({
        contents: `// Optional dependency (of ws, of debug), not shipped in the binary: the caller catches this.\n` +
          `throw Object.assign(new Error("Cannot find module '${args.path}'"), { code: "MODULE_NOT_FOUND" });\n`,
        loader: "js",
      }));
    },
  };
}
