/**
 * The server child of the transport phases (bench/server.ts, IPC channel): starting it, asking it
 * for counts and memory, and the CPU placement of it and this process.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { cpus, platform } from "node:os";
import { fileURLToPath } from "node:url";
import type { ServerReady } from "./common.ts";

let child: ChildProcess | null = null;
let rpcId = 0;
const rpcWait = new Map<number, (m: Record<string, unknown>) => void>();

export function rpc<T = Record<string, unknown>>(cmd: string, timeoutMs = 10_000): Promise<T> {
  const id = ++rpcId;
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      rpcWait.delete(id);
      reject(new Error(`server did not answer '${cmd}' within ${timeoutMs} ms`));
    }, timeoutMs);
    rpcWait.set(id, (m) => {
      clearTimeout(t);
      resolve(m as T);
    });
    child!.send({ id, cmd });
  });
}

export function killChild(): void {
  const c = child as ChildProcess | null;
  if (c && c.exitCode === null) c.kill("SIGKILL");
}

/** The server child's pid, once started. */
export const childPid = (): number | undefined => child?.pid;

/** taskset: pin `pid` (all threads) to `cpu` (a CPU or a list); false if not possible. */
export function pin(pid: number, cpu: number | string): boolean {
  try {
    execFileSync("taskset", ["-a", "-p", "-c", String(cpu), String(pid)], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/**
 * Pin the client to CPU 0 and the server to CPU 1 (Linux `taskset`, 2+ cores): otherwise the
 * scheduler sometimes runs both on one core and sometimes on two, and round-trip figures of every
 * transport jump between two modes from run to run. BENCH_NO_PIN=1 turns this off.
 */
function placeProcesses(serverPid: number | undefined): string {
  if (process.env.BENCH_NO_PIN || platform() !== "linux" || cpus().length < 2 || !serverPid) return "not pinned";
  if (pin(process.pid, 0) && pin(serverPid, 1)) return "client pinned to CPU 0, server to CPU 1 (taskset)";
  return "not pinned";
}

/** Start bench/server.ts (under --cpu-prof with BENCH_CPU_PROF=DIR); its ports and the placement. */
export async function startServer(): Promise<{ ready: ServerReady; pinning: string }> {
  const prof = process.env.BENCH_CPU_PROF ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [];
  const proc = spawn(process.execPath, [
    ...prof,
    "--expose-gc",
    "--import",
    "tsx",
    fileURLToPath(new URL("server.ts", import.meta.url)),
  ], {
    cwd: fileURLToPath(new URL("..", import.meta.url)),
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  child = proc;
  const pinning = placeProcesses(proc.pid);
  const ready = await new Promise<ServerReady>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("server child did not start within 30 s")), 30_000);
    proc.on("message", (m: Record<string, unknown>) => {
      if (m.type === "ready") {
        clearTimeout(t);
        resolve(m as unknown as ServerReady);
      } else if (typeof m.id === "number") rpcWait.get(m.id)?.(m);
    });
    proc.once("exit", (code) => reject(new Error(`server child exited with code ${code}`)));
  });
  return { ready, pinning };
}
