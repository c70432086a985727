import type { Command, OptionValues } from "@commander-js/extra-typings";
import { AtlasError } from "../errors.ts";
import type { Logger } from "../util/log.ts";

/** Any commander command, whatever its inferred arguments and options: what the registrars take and return. */
// deno-lint-ignore no-explicit-any -- commander's generic parameters are inferred per command; the registrars accept any
export type AnyCommand = Command<any, any, any>;

/** A commander parser for an integer option within [min, max]; anything else is a usage error. */
export function intOption(name: string, min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new AtlasError("ERR_USAGE", `${name} must be an integer from ${min} to ${max}, got '${v}'`);
    }
    return n;
  };
}

export const parsePort = intOption("--port", 0, 65535);

/** The body options of every command that sends a message body (read by src/cli/body.ts `readBody`). */
// deno-lint-ignore no-explicit-any -- the command's own argument types, whatever they are
export function withBodyOptions<A extends any[], O extends OptionValues, G extends OptionValues>(c: Command<A, O, G>) {
  return c
    .option("--body-file <file>", "read the body from this file")
    .option("--text", "send the body as a JSON string even if it looks like JSON");
}

/** A repeatable option: each occurrence adds to the list. */
export const collect = (v: string, prev: string[]): string[] => [...prev, v];

/**
 * `--host` of the node commands: an IP as given, or the first address a host name resolves to
 * (a socket binds one address), logged so the operator sees which. Anything else is a usage error.
 */
export async function bindHostOption(log: Logger, host: string | undefined): Promise<string | undefined> {
  if (!host) return host;
  const { resolveHost } = await import("../transport/resolve.ts");
  let all: string[];
  try {
    all = await resolveHost(host);
  } catch (e) {
    throw new AtlasError("ERR_USAGE", `invalid --host '${host}': not an IP address, and ${(e as Error).message}`);
  }
  if (all[0] !== host) log.info(`--host ${host} resolved to ${all[0]}`, { addresses: all.join(", ") });
  return all[0];
}
