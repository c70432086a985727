import { homedir } from "node:os";
import { join, resolve } from "node:path";

/**
 * Where a node keeps its files (docs/architecture.md#home-directory). `--home` beats $ATLAS_HOME beats ~/.atlas. Before a
 * command uses them, checkHome (home-check.ts) refuses a home other local users could tamper with.
 */
export interface HomePaths {
  home: string;
  keysDir: string;
  keyFile: string;
  stateDir: string;
  configFile: string;
  profileFile: string;
  dbFile: string;
  sockFile: string;
  pidFile: string;
}

export function resolveHome(flag?: string, env: Record<string, string | undefined> = process.env): string {
  if (flag) return resolve(flag);
  if (env.ATLAS_HOME) return resolve(env.ATLAS_HOME);
  return join(homedir(), ".atlas");
}

export function homePaths(home: string): HomePaths {
  const stateDir = join(home, "state");
  const keysDir = join(home, "keys");
  return {
    home,
    keysDir,
    keyFile: join(keysDir, "node-key.pem"),
    stateDir,
    configFile: join(stateDir, "config.toml"),
    profileFile: join(stateDir, "profile.toml"),
    dbFile: join(stateDir, "peers.db"),
    sockFile: join(stateDir, "daemon.sock"),
    pidFile: join(stateDir, "daemon.pid"),
  };
}
