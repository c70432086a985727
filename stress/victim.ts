/** A real `atlas daemon` (or relay, bootstrap) on 127.0.0.1 for a phase to attack, in a temporary home. */
import { appendFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { homePaths } from "../src/config/paths.ts";
import { callDaemon } from "../src/daemon/control-client.ts";
import type { StatusReport } from "../src/daemon/ops.ts";
import { parseAddr, type SockAddr } from "../src/transport/addr.ts";
import { initHome, type Listener, startListener } from "../test/helpers/cli.ts";

export interface Victim {
  daemon: Listener;
  home: string;
  nodeId: string;
  addr: SockAddr;
  pid: number;
  /** SIGTERM the process and remove its home (only its own: a phase may run several). */
  stop(): Promise<void>;
}

export interface VictimOptions {
  /** The command: `daemon` (default), `relay`, `bootstrap`. */
  cmd?: string[];
  /** More command-line arguments (`--relay A`, `--port P`). */
  args?: string[];
  /** An existing home (a restart): not initialised again, and not removed by stop(). */
  home?: { home: string; nodeId: string };
}

/** `extraConfig` is appended to the home's config.toml (TOML sections). */
export async function startVictim(extraConfig = "", o: VictimOptions = {}): Promise<Victim> {
  const fresh = !o.home;
  const a = o.home ?? await initHome("victim");
  if (fresh && extraConfig) await appendFile(join(a.home, "state", "config.toml"), extraConfig);
  const daemon = await startListener(a.home, o.args ?? [], { cmd: o.cmd ?? ["daemon"] });
  return {
    daemon,
    home: a.home,
    nodeId: a.nodeId,
    addr: parseAddr(daemon.address)!,
    pid: daemon.proc.pid!,
    stop: async () => {
      await daemon.stop();
      if (fresh) await rm(a.home, { recursive: true, force: true });
    },
  };
}

/** `atlas status --json` of a running victim, through its control socket. */
export function statusOf(home: string): Promise<StatusReport> {
  return callDaemon<StatusReport>(homePaths(home), "status", {}, 10_000);
}

/** Rate limits lifted for unknown peers, so a phase measures the other defences. */
export const NO_RATE_LIMITS =
  "[rate_limit.unknown]\nper_second = 100000\nper_minute = 1000000\nbytes_per_minute = 100000000000\n";
