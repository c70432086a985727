// Bundles cli.ts into dist/atlas.mjs and the library (src/index.ts) into dist/index.mjs, sharing
// dist/chunks/, for `npm start`, the process tests and programs that import "atlas" under plain Node.
// npm packages stay external (resolved from node_modules, so native addons load as usual), and
// code splitting keeps every `await import()` lazy: without it the single ESM file would hoist
// the imports of QUIC, libSQL and viem to its top and `--version` would load them all.
// The standalone binary is made by scripts/build.mjs.
import { build } from "esbuild";
import { rm } from "node:fs/promises";
import { sourceCommit } from "./commit.mjs";
import { buildUdpAddon } from "./build-udp.mjs";

const dist = new URL("../dist/", import.meta.url).pathname;
await rm(new URL("chunks/", `file://${dist}`).pathname, { recursive: true, force: true });
await build({
  entryPoints: {
    atlas: new URL("../cli.ts", import.meta.url).pathname,
    index: new URL("../src/index.ts", import.meta.url).pathname,
  },
  outdir: dist,
  outExtension: { ".js": ".mjs" },
  chunkNames: "chunks/[name]-[hash]",
  splitting: true,
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  packages: "external",
  keepNames: true,
  sourcemap: "linked",
  logLevel: "warning",
  define: { __ATLAS_COMMIT__: JSON.stringify(sourceCommit(new URL("..", import.meta.url).pathname)) },
});
buildUdpAddon();
