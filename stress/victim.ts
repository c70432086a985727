/** A real `atlas daemon` on 127.0.0.1 for a phase to attack, in a temporary home. */
import { appendFile } from "node:fs/promises";
import { join } from "node:path";
import { parseAddr, type SockAddr } from "../src/transport/addr.ts";
import { cleanupHomes, initHome, type Listener, startListener } from "../test/helpers/cli.ts";

export interface Victim {
  daemon: Listener;
  home: string;
  nodeId: string;
  addr: SockAddr;
  pid: number;
  /** SIGTERM the daemon and remove its home. */
  stop(): Promise<void>;
}

/** `extraConfig` is appended to the home's config.toml (TOML sections). */
export async function startVictim(extraConfig = "", cmd: string[] = ["daemon"]): Promise<Victim> {
  const a = await initHome("victim");
  if (extraConfig) await appendFile(join(a.home, "state", "config.toml"), extraConfig);
  const daemon = await startListener(a.home, [], { cmd });
  return {
    daemon,
    home: a.home,
    nodeId: a.nodeId,
    addr: parseAddr(daemon.address)!,
    pid: daemon.proc.pid!,
    stop: async () => {
      await daemon.stop();
      await cleanupHomes();
    },
  };
}

/** Rate limits lifted for unknown peers, so a phase measures the other defences. */
export const NO_RATE_LIMITS =
  "[rate_limit.unknown]\nper_second = 100000\nper_minute = 1000000\nbytes_per_minute = 100000000000\n";
