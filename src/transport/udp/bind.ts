import { loadUdpAddon } from "./addon.ts";
import { DgramUdpSocket } from "./dgram-socket.ts";
import { NativeUdpSocket } from "./native-socket.ts";
import type { UdpBindOptions, UdpSocket } from "./socket.ts";

/**
 * Bind the node's UDP socket: through the atlas_udp addon where it loads, else node:dgram.
 * Errors carry the errno name in `code` (EADDRINUSE, EACCES, EAFNOSUPPORT, …) either way.
 */
export async function bindUdp(o: UdpBindOptions): Promise<UdpSocket> {
  const addon = loadUdpAddon();
  if (addon) return NativeUdpSocket.bind(addon, o);
  return await DgramUdpSocket.bind(o);
}
