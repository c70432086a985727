import { type NodeEnv, nodeEnv } from "../config/env.ts";
import { AtlasError } from "../errors.ts";
import { createLogger, isLogLevel, type LogLevel } from "../util/log.ts";
import { createOutput, type Output } from "./output.ts";

export interface GlobalOpts {
  home?: string;
  json?: boolean;
  logLevel?: string;
  logFormat?: string;
}

/**
 * Everything a command needs from the global flags: what a node run needs (home paths, logger,
 * config loader: `NodeEnv`), plus where the command writes. Heavy pieces load on demand.
 */
export interface Ctx extends NodeEnv {
  out: Output;
  json: boolean;
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
  return {
    ...nodeEnv({ home: g.home, log: createLogger(level, format) }),
    json: !!g.json,
    out: createOutput(!!g.json),
  };
}
