/**
 * What running a node needs from its surroundings: the home's paths, a logger and the config
 * loader. The CLI's `Ctx` (src/cli/context.ts) extends it with its output; a program embedding
 * Atlas makes one with `nodeEnv()` and hands it to `startNode` or `runDaemon` (src/daemon/).
 */
import type { Config } from "./defaults.ts";
import type { ConfigOverrides } from "./load.ts";
import { type HomePaths, homePaths, resolveHome } from "./paths.ts";
import { createLogger, type Logger } from "../util/log.ts";

export interface NodeEnv {
  paths: HomePaths;
  log: Logger;
  /** `state/config.toml` over the defaults, with `overrides` (command-line flags) on top. */
  config(overrides?: ConfigOverrides): Promise<Config>;
}

/**
 * A NodeEnv for `home` (default $ATLAS_HOME, else ~/.atlas), logging to `log` (default: warnings
 * and errors as text on stderr). The config loader is imported on first use.
 */
export function nodeEnv(o: { home?: string; log?: Logger } = {}): NodeEnv {
  const paths = homePaths(resolveHome(o.home));
  return {
    paths,
    log: o.log ?? createLogger("warn"),
    async config(overrides) {
      const { loadConfig } = await import("./load.ts");
      return loadConfig(paths, overrides);
    },
  };
}
