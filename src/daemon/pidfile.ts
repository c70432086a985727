import { open, readFile, rm } from "node:fs/promises";
import { PIDFILE_STARTUP_WAIT_MS } from "../config/durations.ts";
import type { HomePaths } from "../config/paths.ts";
import { AtlasError } from "../errors.ts";
import { sleep } from "../util/time.ts";
import { isDaemonRunning } from "./detect.ts";

/** Whether a process with this PID exists (EPERM: it does, but is another user's). */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function readPid(file: string): Promise<number | null> {
  try {
    const n = Number((await readFile(file, "utf8")).trim());
    return Number.isInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

/**
 * One daemon per home (docs/architecture.md#daemon). The pid file is created exclusively (O_EXCL), so two daemons
 * starting at once cannot both win. A pid file whose process is gone (or is not serving the
 * socket) is stale: it and the socket are removed and the lock is taken.
 */
export async function acquirePidFile(paths: HomePaths): Promise<() => Promise<void>> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(paths.pidFile, "wx", 0o600);
      await fh.writeFile(`${process.pid}\n`);
      await fh.sync();
      await fh.close();
      return async () => {
        if ((await readPid(paths.pidFile)) === process.pid) await rm(paths.pidFile, { force: true });
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") {
        throw new AtlasError("ERR_IO", `cannot create ${paths.pidFile}: ${(e as Error).message}`);
      }
    }
    const pid = await readPid(paths.pidFile);
    if (pid !== null && pid !== process.pid && isProcessAlive(pid) && (await isDaemonRunning(paths))) {
      throw new AtlasError(
        "ERR_USAGE",
        `a daemon is already running for ${paths.home} (pid ${pid}); stop it with \`atlas daemon stop\``,
        { exit: 1 },
      );
    }
    if (pid !== null && pid !== process.pid && isProcessAlive(pid)) {
      // The process exists but serves no socket: it may still be starting. Give it a moment.
      await sleep(PIDFILE_STARTUP_WAIT_MS);
      if (await isDaemonRunning(paths)) {
        throw new AtlasError(
          "ERR_USAGE",
          `a daemon is already running for ${paths.home} (pid ${pid}); stop it with \`atlas daemon stop\``,
          { exit: 1 },
        );
      }
    }
    await rm(paths.pidFile, { force: true });
    await rm(paths.sockFile, { force: true });
  }
  throw new AtlasError("ERR_IO", `cannot take the daemon lock ${paths.pidFile}`);
}

export { readPid };
