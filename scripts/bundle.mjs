// Bundles cli.ts into dist/atlas.mjs for `npm start` and the process tests. npm packages stay
// external (resolved from node_modules), so native addons load as usual. The standalone binary
// is made by scripts/build.mjs.
import { build } from "esbuild";

await build({
  entryPoints: [new URL("../cli.ts", import.meta.url).pathname],
  outfile: new URL("../dist/atlas.mjs", import.meta.url).pathname,
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  packages: "external",
  keepNames: true,
  sourcemap: "inline",
  logLevel: "warning",
});
