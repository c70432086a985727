/**
 * Loading the atlas_udp addon (native/udp/atlas_udp.c), the node's datagram I/O by default on
 * Linux. It is built into `build/atlas_udp.node` by scripts/build-udp.mjs (run by `npm run
 * bundle`, hence by the README's commands) and embedded in the standalone binary. With
 * ATLAS_UDP=dgram in the environment, or absent, unloadable, not Linux, under Deno or in a worker
 * thread, the node uses node:dgram (docs/transport.md, "Datagram I/O").
 */
import { isMainThread } from "node:worker_threads";
import { openAddonFile } from "./addon-file.ts";

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
  /** Busy-poll every socket of the process for up to `us` µs the next time the loop would sleep. */
  expectReply(us: number): void;
  /** [busy polls, busy polls an event ended (a datagram, a thread-pool completion…)], since the process started. */
  spinStats(): number[];
  stats(handle: unknown): number[];
  close(handle: unknown): void;
}

let cached: UdpAddon | null | undefined;
/** Why the addon is not used, when it is not (tests name it when they skip). */
export let udpAddonAbsence = "";

export function loadUdpAddon(): UdpAddon | null {
  if (cached !== undefined) return cached;
  cached = null;
  if (process.env.ATLAS_UDP === "dgram") return void (udpAddonAbsence = "ATLAS_UDP=dgram"), null;
  if (process.platform !== "linux") return void (udpAddonAbsence = `not built for ${process.platform}`), null;
  if ("Deno" in globalThis) return void (udpAddonAbsence = "Deno"), null;
  // The addon's receive arena and busy-poll state are the process's: one thread may use it.
  if (!isMainThread) return void (udpAddonAbsence = "not the main thread"), null;
  try {
    cached = openAddonFile();
    if (!cached) udpAddonAbsence = "build/atlas_udp.node not found";
    return cached;
  } catch (e) {
    udpAddonAbsence = `cannot load: ${(e as Error).message}`;
    return null;
  }
}
