/**
 * Loading `state/config.toml` (src/config/defaults.ts): defaults, overlaid with the file, overlaid with
 * command-line flags. The file is validated against the schema (schema.ts): unknown keys, values
 * of the wrong type and out-of-range numbers are ERR_CONFIG errors that name the file and the key.
 */
import { readFile } from "node:fs/promises";
import { parse as parseToml, TomlError } from "smol-toml";
import { AtlasError } from "../errors.ts";
import { type Config, defaultConfig } from "./defaults.ts";
import type { HomePaths } from "./paths.ts";
import { checkValue, GROUPS, type KeySpec, parseRawValue, SCHEMA, SECTIONS, typeName } from "./schema.ts";

/**
 * Command-line flags for one run. `scalars` replace the file's value (a string is parsed by the
 * key's type, as `config set` does); `lists` add to the file's list, de-duplicated, order kept.
 * A list key given in `scalars` is parsed as a list and added too.
 */
export interface ConfigOverrides {
  scalars?: Record<string, string | number | boolean>;
  lists?: Record<string, string[]>;
}

/** The values a config file sets, flattened to full keys ("rate_limit.unknown.per_second"), file order. */
export type ConfigValues = Map<string, unknown>;

/** Read the config file's text; undefined when it does not exist. */
export async function readConfigText(file: string): Promise<string | undefined> {
  try {
    const text = await readFile(file, "utf8");
    return text.startsWith("\uFEFF") ? text.slice(1) : text;
  } catch (e) {
    if ((e as { code?: string }).code === "ENOENT") return undefined;
    const why = (e as { code?: string }).code ?? (e as Error).message;
    throw new AtlasError("ERR_IO", `${file}: cannot read config: ${why}`, { cause: e });
  }
}

/** Parse and validate config text. Throws AtlasError ERR_CONFIG "<file>: …" (one line). */
export function parseConfigText(file: string, text: string): ConfigValues {
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text, { integersAsBigInt: true });
  } catch (e) {
    if (e instanceof TomlError) {
      const first = (e.message.split("\n")[0] ?? "").replace(/^Invalid TOML document:\s*/, "").trim();
      throw new AtlasError("ERR_CONFIG", `${file}: invalid TOML at line ${e.line}: ${first || "syntax error"}`, {
        cause: e,
      });
    }
    const first = (String((e as Error)?.message ?? e).split("\n")[0] ?? "").trim();
    throw new AtlasError("ERR_CONFIG", `${file}: invalid TOML: ${first}`, { cause: e });
  }
  const fail = (msg: string): never => {
    throw new AtlasError("ERR_CONFIG", `${file}: ${msg}`);
  };
  const out: ConfigValues = new Map();
  const walk = (table: Record<string, unknown>, prefix: string): void => {
    for (const [k, v] of Object.entries(table)) {
      const path = prefix ? `${prefix}.${k}` : k;
      // A quoted key containing a dot ("network.port" = 1) is one key, not a path.
      const spec = k.includes(".") ? undefined : SCHEMA.get(path);
      if (spec) {
        const r = checkValue(spec, v, true);
        if (!r.ok) fail(r.error);
        else out.set(path, r.value);
        continue;
      }
      if (!k.includes(".") && (SECTIONS.includes(path) || GROUPS.includes(path))) {
        if (typeName(v, true) !== "table") fail(`'${path}' must be a table, got ${typeName(v, true)}`);
        walk(v as Record<string, unknown>, path);
        continue;
      }
      fail(`unknown key '${path}'`);
    }
  };
  walk(doc, "");
  return out;
}

/** Read and validate the config file; an empty map when it does not exist. */
export async function readConfigValues(file: string): Promise<ConfigValues> {
  const text = await readConfigText(file);
  return text === undefined ? new Map() : parseConfigText(file, text);
}

/** Set one schema key in a Config (value already validated). */
export function setConfigPath(cfg: Config, spec: KeySpec, value: unknown): void {
  let t = cfg as unknown as Record<string, Record<string, unknown>>;
  for (const part of spec.section.split(".")) t = t[part] as unknown as Record<string, Record<string, unknown>>;
  (t as Record<string, unknown>)[spec.name] = Array.isArray(value) ? [...value] : value;
}

/** Read one schema key from a Config. */
export function getConfigPath(cfg: Config, spec: KeySpec): unknown {
  let t: unknown = cfg;
  for (const part of spec.section.split(".")) t = (t as Record<string, unknown>)[part];
  return (t as Record<string, unknown>)[spec.name];
}

function usage(msg: string): never {
  throw new AtlasError("ERR_USAGE", msg);
}

function addToList(cfg: Config, spec: KeySpec, items: readonly string[]): void {
  const current = getConfigPath(cfg, spec) as string[];
  setConfigPath(cfg, spec, [...new Set([...current, ...items])]);
}

/** Apply command-line overrides to a Config in place. Bad keys or values are ERR_USAGE. */
export function applyOverrides(cfg: Config, overrides: ConfigOverrides = {}): Config {
  for (const [key, v] of Object.entries(overrides.scalars ?? {})) {
    if (v === undefined) continue;
    const spec = SCHEMA.get(key) ?? usage(`unknown config key '${key}'`);
    let value: unknown;
    if (typeof v === "string" && spec.type !== "string") value = parseRawValue(spec, v);
    else {
      const r = checkValue(spec, v);
      value = r.ok ? r.value : usage(r.error);
    }
    if (spec.type === "list") addToList(cfg, spec, value as string[]);
    else setConfigPath(cfg, spec, value);
  }
  for (const [key, items] of Object.entries(overrides.lists ?? {})) {
    if (items === undefined) continue;
    const spec = SCHEMA.get(key) ?? usage(`unknown config key '${key}'`);
    if (spec.type !== "list") usage(`'${key}' is not a list setting`);
    const r = checkValue(spec, items);
    addToList(cfg, spec, r.ok ? (r.value as string[]) : usage(r.error));
  }
  return cfg;
}

/**
 * The effective configuration: defaults, then `state/config.toml` (missing file = defaults),
 * then command-line overrides. File problems are ERR_CONFIG; override problems ERR_USAGE.
 */
export async function loadConfig(paths: HomePaths, overrides?: ConfigOverrides): Promise<Config> {
  const cfg = defaultConfig();
  for (const [key, value] of await readConfigValues(paths.configFile)) setConfigPath(cfg, SCHEMA.get(key)!, value);
  return applyOverrides(cfg, overrides);
}
