/**
 * Where the atlas_udp addon's `.node` file comes from: `build/atlas_udp.node` of this checkout,
 * found up from this module (src/transport/udp, or dist/chunks). The standalone binary replaces
 * this module (scripts/sea/plugin.mjs) with one that loads the copy embedded in the executable.
 * Returns the addon's exports, or null when there is no file; throws when it does not load.
 */
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { UdpAddon } from "./addon.ts";

export function openAddonFile(): UdpAddon | null {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const f = join(dir, "build", "atlas_udp.node");
    if (existsSync(f)) {
      const mod = { exports: {} as UdpAddon };
      process.dlopen(mod, f);
      return mod.exports;
    }
    dir = dirname(dir);
  }
  return null;
}
