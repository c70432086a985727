/**
 * Finding and loading the atlas_udp addon (native/udp/atlas_udp.c). It is built into
 * `build/atlas_udp.node` by scripts/build-udp.mjs (run by `npm run bundle`, hence by the README's
 * commands) and used only with ATLAS_UDP=native in the environment: it is not the default yet
 * (docs/transport.md, "Datagram I/O", says what it waits for) and the standalone binary does not
 * embed it. Absent, unloadable, not Linux, or under Deno, the node uses node:dgram.
 */
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export interface UdpAddon {
  init(arena: Buffer, meta: Buffer): number;
  open(
    family: 4 | 6,
    host: string,
    port: number,
    ipv6Only: boolean,
    rcvbuf: number,
    sndbuf: number,
    onRecv: (count: number) => void,
  ): unknown;
  localPort(handle: unknown): number;
  encodeAddr(family: 4 | 6, host: string, port: number, out: Buffer): number;
  sendBatch(handle: unknown, data: Buffer, meta: Buffer, count: number): number;
  stats(handle: unknown): number[];
  close(handle: unknown): void;
}

let cached: UdpAddon | null | undefined;
/** Why the addon is not used, when it is not (tests name it when they skip). */
export let udpAddonAbsence = "";

export function loadUdpAddon(): UdpAddon | null {
  if (cached !== undefined) return cached;
  cached = null;
  if (process.env.ATLAS_UDP !== "native") return void (udpAddonAbsence = "not asked for (ATLAS_UDP=native)"), null;
  if (process.platform !== "linux") return void (udpAddonAbsence = `not built for ${process.platform}`), null;
  if ("Deno" in globalThis) return void (udpAddonAbsence = "Deno"), null;
  try {
    const file = findBuilt();
    if (!file) return void (udpAddonAbsence = "build/atlas_udp.node not found"), null;
    const mod = { exports: {} as UdpAddon };
    process.dlopen(mod, file);
    return (cached = mod.exports);
  } catch (e) {
    udpAddonAbsence = `cannot load: ${(e as Error).message}`;
    return null;
  }
}

/** build/atlas_udp.node of this checkout: up from this module (src/transport/udp, or dist/chunks). */
function findBuilt(): string | null {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const f = join(dir, "build", "atlas_udp.node");
    if (existsSync(f)) return f;
    dir = dirname(dir);
  }
  return null;
}
