/**
 * Which bootstrap nodes to ask: the configured `network.bootstrap` plus any given on the command
 * line, and the one error for a node that has none (shared by registration, discovery and the CLI).
 */
import type { Config } from "../config/defaults.ts";
import { AtlasError } from "../errors.ts";

/** The configured bootstrap nodes plus `extra` (command-line flags), de-duplicated, order kept. */
export function bootstrapTargets(cfg: Config, extra: readonly string[] = []): string[] {
  return [...new Set([...cfg.network.bootstrap, ...extra].map((s) => s.trim()).filter((s) => s !== ""))];
}

/** The error for a node with no bootstrap node to ask (exit 1). */
export function noBootstrapError(): AtlasError {
  return new AtlasError(
    "ERR_CONFIG",
    "no bootstrap node configured: set network.bootstrap in state/config.toml (e.g. `atlas config set network.bootstrap 198.51.100.7:4433`) or pass --bootstrap host:port",
    { exit: 1 },
  );
}
