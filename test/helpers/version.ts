import assert from "node:assert/strict";
import { VERSION } from "../../src/version.ts";
import { ROOT } from "./cli.ts";
// @ts-expect-error: a plain .mjs script without type declarations
import { sourceCommit } from "../../scripts/commit.mjs";

/** `atlas <version> (commit <12 hex>[-dirty] | unknown)` and a newline. */
export const VERSION_LINE_SHAPE = /^atlas (\S+) \(commit ([0-9a-f]{12}(?:-dirty)?|unknown)\)\n$/;

/**
 * `atlas --version` output: `atlas <package.json version> (commit <12 hex>[-dirty] | unknown)`,
 * naming this checkout's HEAD (the bundle or binary under test was made from it). Whether the tree
 * was dirty then is not compared: it may have changed since.
 */
export function assertVersionLine(out: string): void {
  const m = VERSION_LINE_SHAPE.exec(out);
  assert.ok(m, `--version printed ${JSON.stringify(out)}`);
  assert.equal(m[1], VERSION);
  const bare = (c: string) => c.replace(/-dirty$/, "");
  assert.equal(bare(m[2]!), bare(sourceCommit(ROOT) as string));
}
