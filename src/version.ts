/** Software version, reported by `atlas --version` and in Hello.agent. Kept equal to package.json (a test checks). */
export const VERSION = "0.1.0";
export const AGENT = `atlas/${VERSION}`;

/** Set by esbuild's `define` in scripts/bundle.mjs and scripts/build.mjs (see scripts/commit.mjs). */
declare const __ATLAS_COMMIT__: string | undefined;

/** The source commit this program was bundled from; "unknown" when run from source (tsx, deno). */
export const COMMIT: string = typeof __ATLAS_COMMIT__ === "string" ? __ATLAS_COMMIT__ : "unknown";

/** What `atlas --version` prints: `atlas 0.1.0 (commit 0123456789ab)`. */
export const VERSION_LINE = `atlas ${VERSION} (commit ${COMMIT})`;
