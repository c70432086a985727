/**
 * Packet capture inside a network namespace (root only), for checks of what a node on the path
 * actually sees: `tcpdump` (Debian package tcpdump; .ci/run installs it when run as root) writing a
 * classic pcap file, and a small reader of that file for its IPv4/UDP packets.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { readFile } from "node:fs/promises";

export interface UdpPacket {
  src: string;
  srcPort: number;
  dst: string;
  dstPort: number;
  /** UDP payload bytes (from the UDP header's length field). */
  payload: number;
}

export interface Capture {
  file: string;
  /** SIGINT (tcpdump flushes and closes the file), wait for exit; the file's bytes and tcpdump's summary. */
  stop(): Promise<{ bytes: Buffer; summary: string; droppedByKernel: number }>;
}

const live = new Set<ChildProcess>();
export function killCaptures(): void {
  for (const p of live) p.kill("SIGKILL");
  live.clear();
}

/** Why a capture cannot run here, or null. */
export function captureUnavailable(): string | null {
  if (spawnSync("sh", ["-c", "command -v tcpdump"]).status !== 0) {
    return "tcpdump (Debian package tcpdump) is not installed; .ci/run installs it when run as root";
  }
  return null;
}

/**
 * Start `tcpdump -i iface --immediate-mode -U -s 0 -w file filter` in ns and wait (≤ 10 s) until
 * it listens. `--immediate-mode` hands every packet over as it arrives (without it libpcap's
 * TPACKET_V3 ring passes whole blocks, and packets still in the ring at SIGINT are never
 * written: "0 packets captured, 60 packets received by filter"); `-U` writes each one to the file
 * at once; `-s 0` keeps whole packets; `-Z root` keeps root so the file can be written wherever
 * the test put it.
 */
export function startCapture(ns: string, iface: string, file: string, filter: string[]): Promise<Capture> {
  const why = captureUnavailable();
  if (why) return Promise.reject(new Error(`cannot capture packets: ${why}`));
  const p = spawn("ip", [
    "netns",
    "exec",
    ns,
    "tcpdump",
    "-i",
    iface,
    "-n",
    "--immediate-mode",
    "-U",
    "-s",
    "0",
    "-Z",
    "root",
    "-w",
    file,
    ...filter,
  ], { stdio: ["ignore", "ignore", "pipe"] });
  live.add(p);
  let err = "";
  const exited = new Promise<number | null>((r) => p.on("close", (c) => (live.delete(p), r(c))));
  return new Promise((resolve, reject) => {
    const t = setTimeout(
      () => (p.kill("SIGKILL"), reject(new Error(`tcpdump in ${ns} did not start listening within 10 s: ${err}`))),
      10_000,
    );
    void exited.then((c) => (clearTimeout(t), reject(new Error(`tcpdump in ${ns} exited with ${c}: ${err}`))));
    p.stderr!.on("data", (d) => {
      err += d;
      if (!/listening on /.test(err)) return;
      clearTimeout(t);
      resolve({
        file,
        stop: async () => {
          p.kill("SIGINT");
          let timer: NodeJS.Timeout | undefined;
          const code = await Promise.race([
            exited,
            new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), 10_000))),
          ]);
          clearTimeout(timer);
          if (code === "timeout") {
            p.kill("SIGKILL");
            throw new Error(`tcpdump in ${ns} did not stop within 10 s: ${err}`);
          }
          if (code !== 0) throw new Error(`tcpdump in ${ns} exited with ${code}: ${err}`);
          const dropped = /(\d+) packets? dropped by kernel/.exec(err);
          return {
            bytes: await readFile(file),
            summary: err.trim(),
            droppedByKernel: dropped ? Number(dropped[1]) : NaN,
          };
        },
      });
    });
  });
}

/**
 * The IPv4/UDP packets of a classic pcap file (either byte order, µs or ns timestamps) with link
 * type Ethernet (1) or Linux cooked (113). Other packets are skipped; a truncated or malformed
 * file throws.
 */
export function udpPackets(buf: Buffer): UdpPacket[] {
  if (buf.length < 24) throw new Error(`pcap file too short (${buf.length} bytes)`);
  const magic = buf.readUInt32LE(0);
  let le: boolean;
  if (magic === 0xa1b2c3d4 || magic === 0xa1b23c4d) le = true;
  else if (magic === 0xd4c3b2a1 || magic === 0x4d3cb2a1) le = false;
  else throw new Error(`not a pcap file (magic ${magic.toString(16)})`);
  const u32 = (o: number) => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  const linktype = u32(20) & 0xffff;
  if (linktype !== 1 && linktype !== 113) throw new Error(`unsupported pcap link type ${linktype}`);
  const out: UdpPacket[] = [];
  let off = 24;
  while (off < buf.length) {
    if (off + 16 > buf.length) throw new Error("pcap file ends inside a record header");
    const incl = u32(off + 8);
    const start = off + 16;
    off = start + incl;
    if (off > buf.length) throw new Error("pcap file ends inside a packet");
    const pkt = buf.subarray(start, off);
    let l3 = linktype === 1 ? 14 : 16;
    if (pkt.length < l3) continue;
    let ethertype = pkt.readUInt16BE(l3 - 2);
    if (linktype === 1 && ethertype === 0x8100 && pkt.length >= 18) (ethertype = pkt.readUInt16BE(16)), (l3 = 18);
    if (ethertype !== 0x0800 || pkt.length < l3 + 20) continue;
    const ip = pkt.subarray(l3);
    const ihl = (ip[0]! & 0x0f) * 4;
    if (ip[9] !== 17 || ip.length < ihl + 8) continue;
    const addr = (o: number) => `${ip[o]}.${ip[o + 1]}.${ip[o + 2]}.${ip[o + 3]}`;
    out.push({
      src: addr(12),
      dst: addr(16),
      srcPort: ip.readUInt16BE(ihl),
      dstPort: ip.readUInt16BE(ihl + 2),
      payload: ip.readUInt16BE(ihl + 4) - 8,
    });
  }
  return out;
}
