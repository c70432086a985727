/**
 * Run the real `atlas` CLI (the esbuild bundle dist/atlas.mjs, or ATLAS_BIN) as child processes
 * with temporary homes. Everything is bounded in time and cleaned up by the test's `after`.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createSocket } from "node:dgram";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const BUNDLE = join(ROOT, "dist", "atlas.mjs");

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The command that runs atlas: `node dist/atlas.mjs` unless ATLAS_BIN points at a binary. */
export function atlasCommand(bin = process.env.ATLAS_BIN): [string, string[]] {
  return bin ? [bin, []] : [process.execPath, [BUNDLE]];
}

export function runAtlas(
  args: string[],
  o: { home?: string; env?: Record<string, string>; timeoutMs?: number; bin?: string; input?: string } = {},
): Promise<RunResult> {
  const [cmd, pre] = atlasCommand(o.bin);
  const full = [...pre, ...(o.home ? ["--home", o.home] : []), ...args];
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, full, {
      env: { ...process.env, NODE_OPTIONS: "", ...o.env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d) => (stdout += d));
    p.stderr.on("data", (d) => (stderr += d));
    const t = setTimeout(() => {
      p.kill("SIGKILL");
      reject(new Error(`atlas ${args.join(" ")} timed out\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, o.timeoutMs ?? 30_000);
    p.on("error", reject);
    p.on("close", (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
    p.stdin.end(o.input ?? "");
  });
}

const homes: string[] = [];
export async function tmpHome(prefix = "atlas-test-"): Promise<string> {
  const h = await mkdtemp(join(tmpdir(), prefix));
  homes.push(h);
  return h;
}
export async function cleanupHomes(): Promise<void> {
  await Promise.all(homes.splice(0).map((h) => rm(h, { recursive: true, force: true })));
}

export const NO_STUN = "[stun]\nservers = []\n";

/** `atlas id init` in a fresh home (with no STUN servers configured); returns the home and node ID. */
export async function initHome(name: string, bin?: string): Promise<{ home: string; nodeId: string }> {
  const home = await tmpHome();
  const r = await runAtlas(["id", "init", "--name", name, "--json"], { home, bin });
  if (r.code !== 0) throw new Error(`id init failed: ${r.stderr}`);
  // Tests never ask the public STUN servers of the default config (docs/protocol.md#stun): traffic stays local.
  await writeFile(join(home, "state", "config.toml"), NO_STUN);
  return { home, nodeId: JSON.parse(r.stdout).node_id };
}

export interface Listener {
  proc: ChildProcess;
  address: string;
  port: number;
  nodeId: string;
  stderr: () => string;
  /** SIGTERM and wait; resolves to the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

const live = new Set<ChildProcess>();
export function killAll(): void {
  for (const p of live) p.kill("SIGKILL");
  live.clear();
}

/** Start `atlas net listen --json` on 127.0.0.1 and an OS-chosen port; wait for its first line. */
export function startListener(
  home: string,
  extra: string[] = [],
  o: { bin?: string; cmd?: string[]; env?: Record<string, string> } = {},
): Promise<Listener> {
  const [cmd, pre] = atlasCommand(o.bin);
  const args = [
    ...pre,
    "--home",
    home,
    ...(o.cmd ?? ["net", "listen"]),
    "--host",
    "127.0.0.1",
    "--port",
    "0",
    "--json",
    ...extra,
  ];
  const p = spawn(cmd, args, {
    env: { ...process.env, NODE_OPTIONS: "", ...o.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  live.add(p);
  return waitForListening(p, () => live.delete(p), "listener");
}

/**
 * Wait for a spawned `… daemon --json` (or listener) to print its first JSON line
 * ({address, node_id}); `label` names it in errors. `onClose` is told when the process exits.
 */
export function waitForListening(
  p: ChildProcess,
  onClose: (code: number | null) => unknown,
  label: string,
): Promise<Listener> {
  let out = "";
  let err = "";
  p.stderr!.on("data", (d) => (err += d));
  const exited = new Promise<number | null>((r) => p.on("close", (c) => (onClose(c), r(c))));
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${label} did not start: ${err}`)), 15_000);
    p.stdout!.on("data", (d) => {
      out += d;
      const nl = out.indexOf("\n");
      if (nl < 0) return;
      clearTimeout(t);
      const j = JSON.parse(out.slice(0, nl));
      resolve({
        proc: p,
        address: j.address,
        port: Number(String(j.address).split(":").pop()),
        nodeId: j.node_id,
        stderr: () => err,
        stop: (signal = "SIGTERM") => {
          p.kill(signal);
          return exited;
        },
      });
    });
    void exited.then((c) => reject(new Error(`${label} exited with ${c}: ${err}`)));
  });
}

/** A UDP port on 127.0.0.1 that nothing listens on (bound, read, released). */
export async function freePort(): Promise<number> {
  const s = createSocket("udp4");
  await new Promise<void>((r) => s.bind(0, "127.0.0.1", () => r()));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Two fresh homes, alpha listening (`net listen`, with `extra` flags) and beta to run commands from. */
export async function listenerPair(extra: string[] = []): Promise<{
  a: { home: string; nodeId: string };
  b: { home: string; nodeId: string };
  listener: Listener;
}> {
  const a = await initHome("alpha");
  const b = await initHome("beta");
  return { a, b, listener: await startListener(a.home, extra) };
}

/** Two fresh homes, alpha and beta, each with its daemon, each knowing where the other is. */
export async function daemonPair(): Promise<{
  a: { home: string; nodeId: string };
  b: { home: string; nodeId: string };
  da: Listener;
  db: Listener;
}> {
  const a = await initHome("alpha");
  const b = await initHome("beta");
  const da = await startListener(a.home, [], { cmd: ["daemon"] });
  const db = await startListener(b.home, [], { cmd: ["daemon"] });
  // A pinned connect stores the peer's address, so later commands may name it by node ID.
  for (const [from, to] of [[a, db], [b, da]] as const) {
    const r = await runAtlas(["net", "connect", `${to.nodeId}@${to.address}`], { home: from.home });
    if (r.code !== 0) throw new Error(`net connect ${to.nodeId}: ${r.stderr}`);
  }
  return { a, b, da, db };
}

/** Kill every process these helpers started and remove every temporary home. */
export async function cleanupAll(): Promise<void> {
  killAll();
  await cleanupHomes();
}
