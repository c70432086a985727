/**
 * `atlas devnet up --nodes N` / `atlas devnet down` (issue 14, docs/operating.md "A devnet"): a
 * bootstrap node, a relay and N agent daemons on 127.0.0.1, each its own home under one directory,
 * each a detached `atlas` process (this same program) that outlives the command. `up` returns
 * once every daemon is registered with the bootstrap node and the relay, so each is discoverable
 * by the others; `down` stops them all and removes the directory.
 *
 * The directory holds `devnet.json` (what `down` reads: roles, homes, node IDs, pids) and one home
 * per node (`bootstrap/`, `relay/`, `node1/`…), each with the process's output in `atlas.log`.
 */
import { spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir, userInfo } from "node:os";
import { join, resolve } from "node:path";
import { DEVNET_POLL_MS, DEVNET_READY_MS, DEVNET_STOP_MS } from "../config/durations.ts";
import { homePaths } from "../config/paths.ts";
import { isProcessAlive } from "../daemon/pidfile.ts";
import { AtlasError } from "../errors.ts";
import { sleep } from "../util/time.ts";

export type DevnetRole = "bootstrap" | "relay" | "daemon";

export interface DevnetNode {
  name: string;
  role: DevnetRole;
  home: string;
  node_id: string;
  address: string;
  pid: number;
}

export interface DevnetState {
  dir: string;
  started_at: number;
  nodes: DevnetNode[];
}

export interface DevnetUp extends DevnetState {
  /** From the first spawn to every daemon registered, in ms. */
  ready_ms: number;
  /** A command to try: the first daemon pings the last by node ID. */
  try: string;
}

/** Largest --nodes: each daemon is a process of its own (≈ 80 MB). */
export const MAX_DEVNET_NODES = 32;

/** `$TMPDIR/atlas-devnet-<user>` unless `--dir` says otherwise. */
export function defaultDevnetDir(): string {
  let user: string;
  try {
    user = userInfo().username;
  } catch {
    user = String(process.getuid?.() ?? "user");
  }
  return join(tmpdir(), `atlas-devnet-${user}`);
}

/** How to run this program again: the binary alone, or node with its flags and the script. */
export function selfCommand(): [string, string[]] {
  const script = process.argv[1];
  if (!script || resolve(script) === process.execPath) return [process.execPath, []];
  return [process.execPath, [...process.execArgv, script]];
}

const stateFile = (dir: string) => join(dir, "devnet.json");

export async function readDevnet(dir: string): Promise<DevnetState | null> {
  try {
    return JSON.parse(await readFile(stateFile(dir), "utf8")) as DevnetState;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new AtlasError("ERR_IO", `cannot read ${stateFile(dir)}: ${(e as Error).message}`);
  }
}

/** Wait for `probe` to give a value (not undefined), polling; ERR_TIMEOUT after `deadline` (ms since epoch). */
async function until<T>(
  what: string | (() => string),
  deadline: number,
  probe: () => Promise<T | undefined>,
): Promise<T> {
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) {
      throw new AtlasError("ERR_TIMEOUT", `devnet: ${typeof what === "string" ? what : what()}`);
    }
    await sleep(DEVNET_POLL_MS);
  }
}

interface Started {
  node: DevnetNode;
  log: string;
}

/** Spawn `atlas --home H <role> --host 127.0.0.1 --port 0 --json`, detached, output in atlas.log. */
async function startNode(
  name: string,
  role: DevnetRole,
  home: string,
  extra: string[],
  deadline: number,
): Promise<Started> {
  const log = join(home, "atlas.log");
  const fd = openSync(log, "w", 0o600);
  const [cmd, pre] = selfCommand();
  let child;
  try {
    child = spawn(
      cmd,
      [...pre, "--home", home, "--json", "--log-level", "info", role, "--host", "127.0.0.1", "--port", "0", ...extra],
      { detached: true, stdio: ["ignore", fd, fd], env: { ...process.env, NODE_OPTIONS: "" } },
    );
  } finally {
    closeSync(fd);
  }
  child.unref();
  const pid = child.pid;
  if (pid === undefined) throw new AtlasError("ERR_IO", `devnet: could not start ${name}`);
  const listening = await until(
    `${name} did not start within ${DEVNET_READY_MS / 1000} s (see ${log})`,
    deadline,
    async () => {
      const text = await readFile(log, "utf8");
      const line = text.split("\n").find((l) => l.startsWith('{"event":"listening"'));
      if (line) return JSON.parse(line) as { address: string; node_id: string };
      if (!isProcessAlive(pid)) {
        const last = text.trim().split("\n").at(-1) ?? "";
        throw new AtlasError("ERR_IO", `devnet: ${name} exited while starting: ${last}`);
      }
      return undefined;
    },
  );
  return { node: { name, role, home, node_id: listening.node_id, address: listening.address, pid }, log };
}

async function makeHome(home: string, name: string, config: string): Promise<void> {
  const { initIdentity } = await import("../identity/identity.ts");
  await mkdir(home, { recursive: true, mode: 0o700 });
  const paths = homePaths(home);
  await initIdentity(paths, { name });
  await writeFile(paths.configFile, config, { mode: 0o600 });
}

/**
 * Start a devnet in `dir` (created; it must not hold a running devnet). Every daemon knows the
 * bootstrap node and the relay (network.bootstrap, network.relays, both pinned by node ID), and
 * asks the relay and the bootstrap node for its public address (STUN; two servers, so `atlas
 * netcheck` in a devnet home compares mappings): nothing leaves 127.0.0.1.
 */
export async function devnetUp(o: { dir: string; nodes: number; metrics?: boolean }): Promise<DevnetUp> {
  if (!Number.isInteger(o.nodes) || o.nodes < 1 || o.nodes > MAX_DEVNET_NODES) {
    throw new AtlasError("ERR_USAGE", `--nodes must be between 1 and ${MAX_DEVNET_NODES}, got ${o.nodes}`);
  }
  const dir = resolve(o.dir);
  const old = await readDevnet(dir);
  if (old && old.nodes.some((n) => isProcessAlive(n.pid))) {
    throw new AtlasError(
      "ERR_USAGE",
      `a devnet is already running in ${dir}: stop it with \`atlas devnet down --dir ${dir}\``,
    );
  }
  if (old) await rm(dir, { recursive: true, force: true });
  else if (await stat(dir).then(() => true, () => false)) {
    throw new AtlasError("ERR_USAGE", `${dir} exists and holds no devnet: choose another --dir or remove it`);
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const t0 = Date.now();
  const deadline = t0 + DEVNET_READY_MS;
  const metrics = o.metrics ? '\n[metrics]\nlisten = "127.0.0.1:0"\n' : "";
  const started: Started[] = [];
  const state: DevnetState = { dir, started_at: Math.floor(t0 / 1000), nodes: [] };
  const save = () => writeFile(stateFile(dir), JSON.stringify(state, null, 2) + "\n", { mode: 0o600 });
  try {
    const homes = ["bootstrap", "relay", ...Array.from({ length: o.nodes }, (_, i) => `node${i + 1}`)];
    await Promise.all(homes.map((name) => makeHome(join(dir, name), name, `[stun]\nservers = []\n${metrics}`)));
    const [boot, relay] = await Promise.all([
      startNode("bootstrap", "bootstrap", join(dir, "bootstrap"), [], deadline),
      startNode("relay", "relay", join(dir, "relay"), [], deadline),
    ]);
    started.push(boot!, relay!);
    state.nodes.push(boot!.node, relay!.node);
    await save();
    const bootRef = `${boot!.node.node_id}@${boot!.node.address}`;
    const relayRef = `${relay!.node.node_id}@${relay!.node.address}`;
    const daemons = homes.slice(2);
    await Promise.all(daemons.map((name) =>
      writeFile(
        homePaths(join(dir, name)).configFile,
        `[network]\nbootstrap = ["${bootRef}"]\nrelays = ["${relayRef}"]\n\n[stun]\nservers = ["${
          relay!.node.address
        }", "${boot!.node.address}"]\n${metrics}`,
        { mode: 0o600 },
      )
    ));
    const results = await Promise.allSettled(
      daemons.map((name) => startNode(name, "daemon", join(dir, name), [], deadline)),
    );
    for (const r of results) {
      if (r.status === "fulfilled") {
        started.push(r.value);
        state.nodes.push(r.value.node);
      }
    }
    await save();
    const failed = results.find((r) => r.status === "rejected");
    if (failed) throw (failed as PromiseRejectedResult).reason;
    await waitRegistered(state, deadline);
    const nodes = state.nodes.filter((n) => n.role === "daemon");
    const first = nodes[0]!;
    const last = nodes.at(-1)!;
    return {
      ...state,
      ready_ms: Date.now() - t0,
      try: `atlas --home ${first.home} net ping ${last.node_id} --count 3`,
    };
  } catch (e) {
    await stopAll(state.nodes).catch(() => {});
    throw e;
  }
}

/** Every daemon in the bootstrap registry and registered with the relay. */
async function waitRegistered(state: DevnetState, deadline: number): Promise<void> {
  const { callDaemon } = await import("../daemon/control-client.ts");
  const boot = state.nodes.find((n) => n.role === "bootstrap")!;
  const relay = state.nodes.find((n) => n.role === "relay")!;
  const daemons = state.nodes.filter((n) => n.role === "daemon");
  const missing = { boot: daemons.length, relay: daemons.length };
  await until(
    () =>
      `not every daemon registered within ${
        DEVNET_READY_MS / 1000
      } s (bootstrap misses ${missing.boot}, relay ${missing.relay})`,
    deadline,
    async () => {
      const found = await callDaemon<{ peers: { node_id: string }[] }>(homePaths(boot.home), "net.discover", {});
      const ids = new Set(found.peers.map((p) => p.node_id));
      missing.boot = daemons.filter((d) => !ids.has(d.node_id)).length;
      const r = await callDaemon<{ registered: number }>(homePaths(relay.home), "relay.status", {});
      missing.relay = daemons.length - r.registered;
      return missing.boot === 0 && missing.relay <= 0 ? true : undefined;
    },
  );
}

/** SIGTERM every node still running, wait for them to exit; SIGKILL whoever outlives DEVNET_STOP_MS. */
async function stopAll(nodes: DevnetNode[]): Promise<{ stopped: number; killed: number }> {
  const running = nodes.filter((n) => isProcessAlive(n.pid));
  for (const n of running) {
    try {
      process.kill(n.pid, "SIGTERM");
    } catch { /* gone already */ }
  }
  const deadline = Date.now() + DEVNET_STOP_MS;
  while (running.some((n) => isProcessAlive(n.pid)) && Date.now() < deadline) await sleep(DEVNET_POLL_MS);
  let killed = 0;
  for (const n of running.filter((x) => isProcessAlive(x.pid))) {
    try {
      process.kill(n.pid, "SIGKILL");
      killed++;
    } catch { /* gone already */ }
  }
  return { stopped: running.length, killed };
}

/**
 * Stop every process of the devnet in `dir` and remove the directory (`keep`: leave the homes,
 * logs and databases for a look). ERR_NOT_RUNNING (exit 1) when `dir` holds no devnet.
 */
export async function devnetDown(o: { dir: string; keep?: boolean }): Promise<
  { dir: string; stopped: number; killed: number; pids: number[]; removed: boolean }
> {
  const dir = resolve(o.dir);
  const state = await readDevnet(dir);
  if (!state) throw new AtlasError("ERR_NOT_RUNNING", `no devnet in ${dir} (no devnet.json)`);
  // A pid is only ours while the home's pid file still names it (no signal to a reused pid).
  const { readPid } = await import("../daemon/pidfile.ts");
  const ours: DevnetNode[] = [];
  for (const n of state.nodes) {
    const pid = await readPid(homePaths(n.home).pidFile);
    if (pid === n.pid) ours.push(n);
  }
  // Daemons first: a daemon whose relay is already gone spends its shutdown waiting on it.
  const first = await stopAll(ours.filter((n) => n.role === "daemon"));
  const then = await stopAll(ours.filter((n) => n.role !== "daemon"));
  const r = { stopped: first.stopped + then.stopped, killed: first.killed + then.killed };
  if (!o.keep) await rm(dir, { recursive: true, force: true });
  return { dir, ...r, pids: state.nodes.map((n) => n.pid), removed: !o.keep };
}
