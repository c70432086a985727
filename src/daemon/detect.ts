import { connect } from "node:net";
import { DAEMON_PROBE_MS } from "../config/durations.ts";
import type { HomePaths } from "../config/paths.ts";

/**
 * Is a daemon serving this home? True when its control socket accepts a connection; a stale
 * socket file left by a crash refuses (ECONNREFUSED) and counts as no daemon.
 */
export function isDaemonRunning(paths: HomePaths, timeoutMs = DAEMON_PROBE_MS): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(paths.sockFile);
    const done = (v: boolean) => {
      clearTimeout(t);
      s.destroy();
      resolve(v);
    };
    const t = setTimeout(() => done(false), timeoutMs);
    s.once("connect", () => done(true));
    s.once("error", () => done(false));
  });
}
