import type { Config } from "../config/defaults.ts";
import { type HomePaths, homePaths, resolveHome } from "../config/paths.ts";
import { AtlasError } from "../errors.ts";
import { createLogger, isLogLevel, type Logger, type LogLevel } from "../util/log.ts";
import { createOutput, type Output } from "./output.ts";
import type { ConfigOverrides } from "../config/load.ts";

export interface GlobalOpts {
  home?: string;
  json?: boolean;
  logLevel?: string;
  logFormat?: string;
}

/** Everything a command needs from the global flags; heavy pieces load on demand. */
export interface Ctx {
  paths: HomePaths;
  out: Output;
  json: boolean;
  log: Logger;
  config(overrides?: ConfigOverrides): Promise<Config>;
}

export function makeCtx(g: GlobalOpts, defaultLevel: LogLevel = "warn"): Ctx {
  const level = g.logLevel ?? defaultLevel;
  if (!isLogLevel(level)) {
    throw new AtlasError("ERR_USAGE", `invalid --log-level '${level}': expected debug, info, warn, error or silent`);
  }
  const format = g.logFormat ?? "text";
  if (format !== "text" && format !== "json") {
    throw new AtlasError("ERR_USAGE", `invalid --log-format '${format}': expected text or json`);
  }
  const paths = homePaths(resolveHome(g.home));
  return {
    paths,
    json: !!g.json,
    out: createOutput(!!g.json),
    log: createLogger(level, format),
    async config(overrides) {
      const { loadConfig } = await import("../config/load.ts");
      return loadConfig(paths, overrides);
    },
  };
}
