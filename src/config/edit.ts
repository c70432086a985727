/**
 * `atlas config show | get KEY | set KEY VALUE` (README.md#commands, src/config/defaults.ts): reading single keys, parsing
 * command-line values by the schema, rewriting `state/config.toml`, and rendering TOML.
 *
 * `set` keeps the file minimal: it holds only the keys the user set, never a dump of the defaults.
 * When it can, `set` edits the one line (or inserts it) so the user's comments and layout survive;
 * the edit is re-parsed and must yield exactly the intended values, otherwise the file is rewritten
 * from its values in schema order.
 */
import { isDeepStrictEqual } from "node:util";
import { parse as parseToml } from "smol-toml";
import { AtlasError } from "../errors.ts";
import { atomicWrite } from "../util/fs.ts";
import type { Config } from "./defaults.ts";
import { type ConfigValues, getConfigPath, parseConfigText, readConfigText } from "./load.ts";
import type { HomePaths } from "./paths.ts";
import { GROUPS, type KeySpec, parseRawValue, SCHEMA, SECTIONS } from "./schema.ts";

function specFor(key: string): KeySpec {
  const spec = SCHEMA.get(key);
  if (spec) return spec;
  if (SECTIONS.includes(key) || GROUPS.includes(key)) {
    const example = [...SCHEMA.keys()].find((k) => k.startsWith(`${key}.`));
    throw new AtlasError("ERR_USAGE", `'${key}' is a section, not a key; give a full key such as '${example}'`);
  }
  throw new AtlasError("ERR_USAGE", `unknown config key '${key}'`);
}

/** Parse a command-line value for KEY by its schema type. Unknown key or bad value: ERR_USAGE. */
export function parseConfigValue(key: string, raw: string): unknown {
  return parseRawValue(specFor(key), raw);
}

/**
 * A key's value ("network.port"), a section ("network", "rate_limit.unknown") or a group of
 * sections ("rate_limit") as a fresh copy. Unknown key: ERR_USAGE.
 */
export function getConfigValue(cfg: Config, key: string): unknown {
  const spec = SCHEMA.get(key);
  if (spec) return structuredClone(getConfigPath(cfg, spec));
  if (SECTIONS.includes(key) || GROUPS.includes(key)) {
    let t: unknown = cfg;
    for (const part of key.split(".")) t = (t as Record<string, unknown>)[part];
    return structuredClone(t);
  }
  throw new AtlasError("ERR_USAGE", `unknown config key '${key}'`);
}

/**
 * `config set KEY VALUE`: validate the existing file (ERR_CONFIG when it is invalid), parse the
 * value (ERR_USAGE), set that one key and write the file atomically with mode 0600.
 */
export async function setConfigValue(paths: HomePaths, key: string, raw: string): Promise<void> {
  const spec = specFor(key);
  const value = parseRawValue(spec, raw);
  const file = paths.configFile;
  const text = await readConfigText(file);
  const values: ConfigValues = text === undefined ? new Map() : parseConfigText(file, text);
  values.set(key, value);
  let out: string | undefined;
  if (text !== undefined) {
    for (const candidate of editCandidates(text, spec, tomlValue(value))) {
      if (sameValues(file, candidate, values)) {
        out = candidate;
        break;
      }
    }
  }
  out ??= renderValues(values);
  await atomicWrite(file, out, 0o600);
}

/** The full effective configuration as TOML, every key, in schema order (`config show`). */
export function renderConfig(cfg: Config): string {
  const values: ConfigValues = new Map();
  for (const spec of SCHEMA.values()) values.set(spec.key, getConfigPath(cfg, spec));
  return renderValues(values);
}

/**
 * How `config get` prints a value: strings, numbers and booleans plainly; lists as an inline
 * TOML array (also valid JSON); tables as TOML. `key` (optional) makes sub-table headers absolute
 * (`[rate_limit.unknown]` rather than `[unknown]`).
 */
export function formatConfigValue(v: unknown, key?: string): string {
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean" || typeof v === "bigint") return String(v);
  if (Array.isArray(v)) return tomlValue(v);
  if (typeof v === "object" && v !== null) {
    return renderTable(v as Record<string, unknown>, key ? key.split(".") : []).join("\n");
  }
  return String(v);
}

// ---- TOML rendering ----

function tomlString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '"') out += '\\"';
    else if (ch === "\\") out += "\\\\";
    else if (ch === "\n") out += "\\n";
    else if (ch === "\t") out += "\\t";
    else if (ch === "\r") out += "\\r";
    else if (c < 0x20 || c === 0x7f) out += `\\u${c.toString(16).padStart(4, "0")}`;
    else out += ch;
  }
  return out + '"';
}

function tomlKey(k: string): string {
  return /^[A-Za-z0-9_-]+$/.test(k) ? k : tomlString(k);
}

/** One value as TOML (integers, booleans, strings, arrays, inline tables). */
export function tomlValue(v: unknown): string {
  if (typeof v === "string") return tomlString(v);
  if (typeof v === "number") {
    if (Number.isInteger(v)) return String(v);
    if (Number.isNaN(v)) return "nan";
    if (!Number.isFinite(v)) return v > 0 ? "inf" : "-inf";
    return String(v).includes(".") || String(v).includes("e") ? String(v) : `${v}.0`;
  }
  if (typeof v === "bigint" || typeof v === "boolean") return String(v);
  if (Array.isArray(v)) return `[${v.map(tomlValue).join(", ")}]`;
  if (typeof v === "object" && v !== null) {
    const entries = Object.entries(v).map(([k, x]) => `${tomlKey(k)} = ${tomlValue(x)}`);
    return entries.length ? `{ ${entries.join(", ")} }` : "{}";
  }
  return tomlString(String(v));
}

function isTable(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A table as TOML lines: its values, then each sub-table under its own header. */
function renderTable(t: Record<string, unknown>, path: string[]): string[] {
  const lines: string[] = [];
  const entries = Object.entries(t);
  const scalars = entries.filter(([, v]) => !isTable(v));
  const tables = entries.filter(([, v]) => isTable(v));
  if (path.length > 0 && (scalars.length > 0 || tables.length === 0)) lines.push(`[${path.map(tomlKey).join(".")}]`);
  for (const [k, v] of scalars) lines.push(`${tomlKey(k)} = ${tomlValue(v)}`);
  for (const [k, v] of tables) {
    if (lines.length > 0) lines.push("");
    lines.push(...renderTable(v as Record<string, unknown>, [...path, k]));
  }
  return lines;
}

/** Flat values as a TOML document, sections and keys in schema order. */
function renderValues(values: ConfigValues): string {
  const root: Record<string, unknown> = {};
  for (const spec of SCHEMA.values()) {
    if (!values.has(spec.key)) continue;
    let t = root;
    for (const part of spec.section.split(".")) t = (t[part] ??= {}) as Record<string, unknown>;
    t[spec.name] = values.get(spec.key);
  }
  const lines = renderTable(root, []);
  return lines.length ? lines.join("\n") + "\n" : "";
}

// ---- in-place editing of the user's file ----

function sameValues(file: string, text: string, want: ConfigValues): boolean {
  try {
    return isDeepStrictEqual(Object.fromEntries(parseConfigText(file, text)), Object.fromEntries(want));
  } catch {
    return false;
  }
}

/**
 * Candidate edits of the user's text setting one key, best first (keeping a trailing comment,
 * then without). Each is only a guess: the caller re-parses it and checks the result.
 */
function editCandidates(text: string, spec: KeySpec, valueToml: string): string[] {
  const eol = text.includes("\r\n") ? "\r\n" : "\n";
  const lines = text.split(/\r?\n/);
  const keyRe = new RegExp(`^(\\s*)${spec.name}\\s*=\\s*(.*)$`);
  let current = "";
  let start = -1;
  let end = -1;
  let keyLine = -1;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (/^\s*\[/.test(line)) {
      const h = /^\s*\[\s*([A-Za-z0-9_.\s-]+?)\s*\]\s*(#.*)?$/.exec(line);
      current = h ? h[1]!.replace(/\s+/g, "") : "\0"; // "\0": an array of tables or a quoted header
      if (start >= 0 && end < 0) end = i;
      if (current === spec.section && start < 0) start = i;
      continue;
    }
    if (current === spec.section && keyLine < 0 && keyRe.test(line)) keyLine = i;
  }
  const join = (ls: string[]): string => ls.join(eol);
  const assignment = `${spec.name} = ${valueToml}`;
  if (keyLine >= 0) {
    const m = keyRe.exec(lines[keyLine]!)!;
    const indent = m[1]!;
    const rest = m[2]!;
    const out: string[] = [];
    // Keep a trailing comment when what precedes it is a complete TOML value.
    const hash = rest.search(/\s#/);
    if (hash >= 0) {
      const comment = rest.slice(hash).trimStart();
      let valueOk = false;
      try {
        parseToml(`v = ${rest.slice(0, hash)}`);
        valueOk = true;
      } catch {
        /* the '#' is inside the value */
      }
      if (valueOk) out.push(join(lines.map((l, i) => (i === keyLine ? `${indent}${assignment}  ${comment}` : l))));
    }
    out.push(join(lines.map((l, i) => (i === keyLine ? `${indent}${assignment}` : l))));
    return out;
  }
  if (start >= 0) {
    const stop = end < 0 ? lines.length : end;
    let at = start + 1;
    for (let i = start + 1; i < stop; i++) if (lines[i]!.trim() !== "" && !lines[i]!.trim().startsWith("#")) at = i + 1;
    return [join([...lines.slice(0, at), assignment, ...lines.slice(at)])];
  }
  let base = text;
  if (base !== "" && !base.endsWith("\n")) base += eol;
  const sep = base.trim() === "" ? "" : eol;
  return [`${base}${sep}[${spec.section}]${eol}${assignment}${eol}`];
}
