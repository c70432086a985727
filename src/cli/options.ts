import type { Command } from "@commander-js/extra-typings";
import { AtlasError } from "../errors.ts";

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

/** A repeatable option: each occurrence adds to the list. */
export const collect = (v: string, prev: string[]): string[] => [...prev, v];
