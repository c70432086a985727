/**
 * A small internet in Linux network namespaces, for NAT tests (root only).
 *
 *   pub   : the public segment — bridge br0 with 198.18.0.1 and 198.18.0.2 (bootstrap / STUN nodes)
 *   natA  : router, wan 198.18.0.11, lan 100.64.1.1/24, nftables `masquerade persistent` (port-preserving)
 *   natB  : router, wan 198.18.0.12, lan 100.64.2.1/24, nftables `masquerade fully-random` (symmetric:
 *           a new random public port for every new 5-tuple, i.e. per destination)
 *   natC  : router, wan 198.18.0.13, lan 100.64.3.1/24, full cone (endpoint-independent mapping and
 *           filtering: once the agent sent from int:p, anyone may send to wan:p and reach int:p)
 *   natD  : router, wan 198.18.0.14, lan 100.64.4.1/24, address-restricted cone (endpoint-independent
 *           mapping; inbound to wan:p from any port of an IP address int:p has sent to)
 *   natE–natH : a second router of each kind, in the same order (wan 198.18.0.15–18, lan 100.64.5–8.1/24)
 *   a, b, c, d : agents behind natA (100.64.1.2), natB (100.64.2.2), natC (100.64.3.2), natD (100.64.4.2)
 *   e, f, g, h : agents behind natE–natH (100.64.5.2 … 100.64.8.2)
 *   p     : an agent directly on the public segment (198.18.0.30)
 *   r     : a relay node on the public segment (198.18.0.3), in a namespace of its own so that a
 *           packet capture there sees exactly the relay's traffic
 *
 * 198.18.0.0/15 is the benchmarking range and 100.64.0.0/10 the CGNAT range; nothing here routes
 * outside the namespaces: no namespace has a link to the host's namespace. Every name starts with
 * `atl<pid>-`; `destroy()` removes the nft tables and namespaces (veths go with them), and
 * `create()` first removes leftovers of crashed runs (prefix `atl<pid>-` whose pid is dead, or ours).
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { BUNDLE, type Listener, waitForListening } from "./cli.ts";
import { waitFor } from "./wait.ts";

export const PUB_BOOT1 = "198.18.0.1";
export const PUB_BOOT2 = "198.18.0.2";
export const NAT_A_WAN = "198.18.0.11";
export const NAT_B_WAN = "198.18.0.12";
export const NAT_C_WAN = "198.18.0.13";
export const NAT_D_WAN = "198.18.0.14";
export const AGENT_A = "100.64.1.2";
export const AGENT_B = "100.64.2.2";
export const AGENT_C = "100.64.3.2";
export const AGENT_D = "100.64.4.2";
export const AGENT_E = "100.64.5.2";
export const AGENT_F = "100.64.6.2";
export const AGENT_G = "100.64.7.2";
export const AGENT_H = "100.64.8.2";
export const AGENT_P = "198.18.0.30";
export const PUB_RELAY = "198.18.0.3";

/**
 * The four classic NAT behaviours (RFC 4787 terms: mapping / filtering):
 *   port-restricted    : endpoint-independent / address-and-port-dependent (`masquerade persistent`)
 *   symmetric          : address-and-port-dependent / address-and-port-dependent (`masquerade fully-random`)
 *   full-cone          : endpoint-independent / endpoint-independent
 *   address-restricted : endpoint-independent / address-dependent
 */
export type NatKind = "port-restricted" | "symmetric" | "full-cone" | "address-restricted";

/** The routers: each with one agent behind it on a /24 LAN (`gw` on the router, `agent` the host). */
export const ROUTERS = [
  { name: "natA", agentNs: "a", wan: NAT_A_WAN, gw: "100.64.1.1", agent: AGENT_A, kind: "port-restricted" },
  { name: "natB", agentNs: "b", wan: NAT_B_WAN, gw: "100.64.2.1", agent: AGENT_B, kind: "symmetric" },
  { name: "natC", agentNs: "c", wan: NAT_C_WAN, gw: "100.64.3.1", agent: AGENT_C, kind: "full-cone" },
  { name: "natD", agentNs: "d", wan: NAT_D_WAN, gw: "100.64.4.1", agent: AGENT_D, kind: "address-restricted" },
  // A second router of each kind, so that two agents behind NATs of the same kind can meet.
  { name: "natE", agentNs: "e", wan: "198.18.0.15", gw: "100.64.5.1", agent: AGENT_E, kind: "port-restricted" },
  { name: "natF", agentNs: "f", wan: "198.18.0.16", gw: "100.64.6.1", agent: AGENT_F, kind: "symmetric" },
  { name: "natG", agentNs: "g", wan: "198.18.0.17", gw: "100.64.7.1", agent: AGENT_G, kind: "full-cone" },
  { name: "natH", agentNs: "h", wan: "198.18.0.18", gw: "100.64.8.1", agent: AGENT_H, kind: "address-restricted" },
] as const satisfies readonly {
  name: string;
  agentNs: string;
  wan: string;
  gw: string;
  agent: string;
  kind: NatKind;
}[];

type RouterName = (typeof ROUTERS)[number]["name"];
type AgentName = (typeof ROUTERS)[number]["agentNs"];

export interface Net {
  prefix: string;
  ns: { pub: string; p: string; r: string } & Record<RouterName | AgentName, string>;
  destroy(): void;
}

/** Seconds a cone mapping (and an address-restricted permission) lives without outgoing traffic. */
export const CONE_TIMEOUT_S = 120;

/**
 * The nftables ruleset of a router of `kind`. All forward with policy drop: out from the LAN, and
 * back in only conntrack replies — plus, for the two cones built here, new inbound UDP flows to a
 * mapped port. Those cones rely on masquerade keeping the source port (it does unless the port is
 * taken, and each LAN here has one host), so the public port is the private one: `ports` maps
 * it to the private address and port, refreshed by every outgoing packet; prerouting DNATs any new
 * inbound flow to it. The full cone lets every such flow in; the address-restricted cone only those
 * from an address the private endpoint has sent to (`peers`: private addr . port . remote addr).
 */
export function natRules(kind: NatKind): string {
  const how = kind === "port-restricted" ? " persistent" : kind === "symmetric" ? " fully-random" : "";
  const cone = kind === "full-cone" || kind === "address-restricted";
  const restricted = kind === "address-restricted";
  const t = `flags dynamic,timeout; timeout ${CONE_TIMEOUT_S}s;`;
  const lines = [
    "table ip atlnat {",
    cone && `  map ports { type inet_service : ipv4_addr . inet_service; ${t} }`,
    restricted && `  set peers { type ipv4_addr . inet_service . ipv4_addr; ${t} }`,
    cone && "  chain nat_pre { type nat hook prerouting priority dstnat; policy accept;",
    cone && '    iifname "wan" dnat ip to udp dport map @ports',
    cone && "  }",
    `  chain nat_post { type nat hook postrouting priority srcnat; policy accept; oifname "wan" masquerade${how}; }`,
    // Unsolicited packets to the router itself are dropped, as a home router's firewall does. Left
    // to the local stack, each would leave a conntrack entry (wan:p ← peer) that makes the router
    // re-map its own agent's next packet to that peer onto another port: two such routers could then
    // never open a path unless the first packets crossed in flight (sub-millisecond here).
    '  chain filter_in { type filter hook input priority filter; policy accept; iifname "wan" ct state new drop; }',
    "  chain filter_fwd { type filter hook forward priority filter; policy drop;",
    cone && '    iifname "lan" oifname "wan" update @ports { udp sport : ip saddr . udp sport }',
    restricted && '    iifname "lan" oifname "wan" update @peers { ip saddr . udp sport . ip daddr }',
    "    ct state established,related accept",
    '    iifname "lan" oifname "wan" accept',
    cone &&
    `    iifname "wan" oifname "lan" ct status dnat ${
      restricted ? "ip daddr . udp dport . ip saddr @peers " : ""
    }accept`,
    "  }",
    "}",
  ];
  return lines.filter((l) => l !== false).join("\n") + "\n";
}

function sh(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, {
    encoding: "utf8",
    input,
    stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    timeout: 10_000,
  });
}

function listNs(): string[] {
  const r = spawnSync("ip", ["netns", "list"], { encoding: "utf8" });
  return (r.stdout ?? "").split("\n").map((l) => l.split(" ")[0]!).filter(Boolean);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Remove namespaces (and the nft tables in them) whose name starts with `prefix`. */
export function removeNamespaces(prefix: string): void {
  for (const n of listNs().filter((x) => x.startsWith(prefix))) {
    spawnSync("ip", ["netns", "exec", n, "nft", "delete", "table", "ip", "atlnat"], { stdio: "ignore" });
    // Kill anything still running inside (processes this suite started there).
    const pids = spawnSync("ip", ["netns", "pids", n], { encoding: "utf8" }).stdout ?? "";
    for (const pid of pids.split(/\s+/).filter(Boolean)) spawnSync("kill", ["-9", pid], { stdio: "ignore" });
    spawnSync("ip", ["netns", "del", n], { stdio: "ignore" });
  }
}

/** Leftovers of crashed runs: `atl<pid>-*` where pid is ours or no longer alive. */
function sweepStale(): void {
  const seen = new Set<number>();
  for (const n of listNs()) {
    const m = /^atl(\d+)-/.exec(n);
    if (m) seen.add(Number(m[1]));
  }
  for (const pid of seen) if (pid === process.pid || !pidAlive(pid)) removeNamespaces(`atl${pid}-`);
}

/** Can we create namespaces at all? (root, and `ip netns add` works.) Returns a reason when not. */
export function netnsUnavailable(): string | null {
  if (process.getuid?.() !== 0) return "not running as root";
  if (spawnSync("sh", ["-c", "command -v nft"]).status !== 0) {
    return "nft (Debian package nftables) is not installed; .ci/run installs it when run as root";
  }
  const probe = `atl${process.pid}-probe`;
  const r = spawnSync("ip", ["netns", "add", probe], { encoding: "utf8" });
  if (r.status !== 0) return `ip netns add failed: ${(r.stderr ?? "").trim()}`;
  spawnSync("ip", ["netns", "del", probe]);
  return null;
}

export function createNet(): Net {
  sweepStale();
  const prefix = `atl${process.pid}-`;
  const ns = { pub: `${prefix}pub`, p: `${prefix}p`, r: `${prefix}r` } as Net["ns"];
  for (const r of ROUTERS) {
    ns[r.name] = `${prefix}${r.name}`;
    ns[r.agentNs] = `${prefix}${r.agentNs}`;
  }
  const net: Net = { prefix, ns, destroy: () => removeNamespaces(prefix) };
  try {
    const ipn = (n: string, ...args: string[]) => sh("ip", ["-n", n, ...args]);
    for (const n of Object.values(ns)) {
      sh("ip", ["netns", "add", n]);
      ipn(n, "link", "set", "lo", "up");
    }
    // Public segment: a bridge in pub, one port per attached namespace.
    ipn(ns.pub, "link", "add", "br0", "type", "bridge");
    ipn(ns.pub, "addr", "add", `${PUB_BOOT1}/24`, "dev", "br0");
    ipn(ns.pub, "addr", "add", `${PUB_BOOT2}/24`, "dev", "br0");
    ipn(ns.pub, "link", "set", "br0", "up");
    const attach = (n: string, port: string, ifname: string, addr: string) => {
      // Created inside pub with the peer moved straight into n: nothing touches the host namespace.
      ipn(ns.pub, "link", "add", port, "type", "veth", "peer", "name", ifname, "netns", n);
      ipn(ns.pub, "link", "set", port, "master", "br0");
      ipn(ns.pub, "link", "set", port, "up");
      ipn(n, "addr", "add", addr, "dev", ifname);
      ipn(n, "link", "set", ifname, "up");
    };
    for (const r of ROUTERS) attach(ns[r.name], `p${r.agentNs}`, "wan", `${r.wan}/24`);
    attach(ns.p, "pp", "eth0", `${AGENT_P}/24`);
    attach(ns.r, "pr", "eth0", `${PUB_RELAY}/24`);
    // LANs behind the routers.
    const lan = (router: string, agent: string, gw: string, addr: string) => {
      ipn(router, "link", "add", "lan", "type", "veth", "peer", "name", "eth0", "netns", agent);
      ipn(router, "addr", "add", `${gw}/24`, "dev", "lan");
      ipn(router, "link", "set", "lan", "up");
      ipn(agent, "addr", "add", `${addr}/24`, "dev", "eth0");
      ipn(agent, "link", "set", "eth0", "up");
      ipn(agent, "route", "add", "default", "via", gw);
      sh("ip", ["netns", "exec", router, "sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    };
    for (const r of ROUTERS) {
      lan(ns[r.name], ns[r.agentNs], r.gw, r.agent);
      sh("ip", ["netns", "exec", ns[r.name], "nft", "-f", "-"], natRules(r.kind));
    }
  } catch (e) {
    net.destroy();
    throw e;
  }
  return net;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

const live = new Set<ChildProcess>();
export function killAllInNs(): void {
  for (const p of live) p.kill("SIGKILL");
  live.clear();
}

/** `ip netns exec <ns> node dist/atlas.mjs --home H ...args`, bounded in time. */
export function runAtlasIn(ns: string, home: string, args: string[], timeoutMs = 30_000): Promise<RunResult> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const p = spawn("ip", ["netns", "exec", ns, process.execPath, BUNDLE, "--home", home, ...args], {
      env: { ...process.env, NODE_OPTIONS: "" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    live.add(p);
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d) => (stdout += d));
    p.stderr.on("data", (d) => (stderr += d));
    const t = setTimeout(() => {
      p.kill("SIGKILL");
      reject(new Error(`[${ns}] atlas ${args.join(" ")} timed out\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    p.on("error", reject);
    p.on("close", (code) => {
      clearTimeout(t);
      live.delete(p);
      resolve({ code, stdout, stderr, ms: Date.now() - t0 });
    });
  });
}

export type NsNode = Listener;

/** Start `atlas <cmd> --host addr --port port --json` inside ns (`ip netns exec` execs node, so the pid is node's). */
export function startInNs(
  ns: string,
  home: string,
  host: string,
  port: number,
  cmd: string[] = ["daemon"],
): Promise<NsNode> {
  const p = spawn("ip", [
    "netns",
    "exec",
    ns,
    process.execPath,
    BUNDLE,
    "--home",
    home,
    ...cmd,
    "--host",
    host,
    "--port",
    String(port),
    "--json",
  ], { env: { ...process.env, NODE_OPTIONS: "" }, stdio: ["ignore", "pipe", "pipe"] });
  live.add(p);
  return waitForListening(p, () => live.delete(p), `[${ns}] ${cmd.join(" ")}`);
}

/** coturn's STUN port in the lab; its alternate port (RFC 5780) is this plus one. */
export const STUN_PORT = 3478;

/**
 * coturn as a STUN-only server on the public segment at PUB_BOOT1 and PUB_BOOT2 (two addresses:
 * mapping and filtering tests compare their answers). Resolves once every socket it binds is up:
 * both addresses on STUN_PORT, and on the alternate port too when `alternate`.
 */
export async function startStunServer(
  net: Net,
  o: { pidfile?: string; alternate?: boolean } = {},
): Promise<ChildProcess> {
  const args = ["netns", "exec", net.ns.pub, "turnserver", "-n", "--stun-only"];
  for (const a of [PUB_BOOT1, PUB_BOOT2]) args.push("-L", a);
  args.push("-p", String(STUN_PORT), "--no-cli", "--no-tls", "--no-dtls", "--log-file", "stdout", "--simple-log");
  if (o.pidfile) args.push("--pidfile", o.pidfile);
  const turn = spawn("ip", args, { stdio: "ignore" });
  const ports = o.alternate ? [STUN_PORT, STUN_PORT + 1] : [STUN_PORT];
  const want = [PUB_BOOT1, PUB_BOOT2].flatMap((a) => ports.map((p) => ` ${a}:${p} `));
  let ss = "";
  await waitFor(`turnserver listening on ${want.join(",")}`, () => {
    if (turn.exitCode !== null) throw new Error("turnserver exited");
    ss = spawnSync("ip", ["netns", "exec", net.ns.pub, "ss", "-Hnlu"], { encoding: "utf8" }).stdout ?? "";
    return want.every((w) => ss.includes(w));
  }, { intervalMs: 50, lastSeen: () => ss });
  return turn;
}
