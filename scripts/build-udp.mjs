// Builds the atlas_udp addon (native/udp/atlas_udp.c) into build/atlas_udp.node with the C
// compiler and the Node headers of this machine, offline: an N-API addon needs no linking against
// node, so one `cc` call does what node-gyp would (docs/decisions.md, "Batched datagram I/O").
// Linux only; without a compiler or headers it says so and the node keeps using node:dgram.
// Run by scripts/bundle.mjs; skipped when the addon is newer than its source.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const src = join(root, "native/udp/atlas_udp.c");
const out = join(root, "build/atlas_udp.node");

export function buildUdpAddon() {
  if (process.platform !== "linux") return;
  if (existsSync(out) && statSync(out).mtimeMs >= statSync(src).mtimeMs) return;
  const include = [join(dirname(process.execPath), "../include/node"), "/usr/include/node"].find((d) =>
    existsSync(join(d, "node_api.h"))
  );
  if (!include) {
    console.warn("build-udp: Node's headers (node_api.h) not found: the atlas_udp addon is not built");
    return;
  }
  mkdirSync(dirname(out), { recursive: true });
  try {
    execFileSync(process.env.CC || "cc", ["-O2", "-Wall", "-shared", "-fPIC", `-I${include}`, "-o", out, src], {
      stdio: ["ignore", "inherit", "inherit"],
    });
  } catch (e) {
    console.warn(`build-udp: the atlas_udp addon is not built (${e.message.split("\n")[0]})`);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) buildUdpAddon();
