import { AtlasError, Exit } from "../errors.ts";
import type { OperatorInfoView } from "../daemon/ops.ts";
import type { Listening } from "../daemon/daemon.ts";

/** Where a command writes: stdout for results, stderr for errors; `json` switches the format. */
export interface Output {
  json: boolean;
  line(s: string): void;
  /** `Label : value` lines with labels padded to one column (README.md#commands output shapes). */
  fields(rows: [string, string][], width?: number): void;
  data(v: unknown): void;
}

export function createOutput(json: boolean, write: (s: string) => void = (s) => process.stdout.write(s)): Output {
  return {
    json,
    line: (s) => write(s + "\n"),
    fields(rows, width) {
      const w = width ?? Math.max(...rows.map(([l]) => l.length));
      for (const [l, v] of rows) write(`${l.padEnd(w)} : ${v}\n`);
    },
    data: (v) => write(JSON.stringify(v, jsonReplacer) + "\n"),
  };
}

/** A daemon's `Listening on <address> as <node ID>` line, or with --json its `listening` event. */
export function printListening(out: Output): (l: Listening) => void {
  return (l) => {
    if (out.json) out.data({ event: "listening", ...l });
    else out.line(`Listening on ${l.address} as ${l.node_id}`);
  };
}

function jsonReplacer(_k: string, v: unknown): unknown {
  if (v instanceof Uint8Array) return Buffer.from(v).toString("hex");
  if (typeof v === "bigint") return Number(v);
  return v;
}

/** One line on stderr (or a JSON error document) and the exit code for it (README.md#commands). */
export function reportError(
  e: unknown,
  json: boolean,
  write: (s: string) => void = (s) => process.stderr.write(s),
): number {
  const err = e instanceof AtlasError
    ? e
    : new AtlasError("ERR_INTERNAL", `internal error: ${oneLine((e as Error)?.message ?? String(e))}`, {
      exit: Exit.ERROR,
    });
  const message = oneLine(err.message);
  if (json) write(JSON.stringify({ error: { code: err.code, message } }) + "\n");
  else write(`error: ${humanTimes(message)}\n`);
  if (process.env.ATLAS_DEBUG && e instanceof Error && e.stack) write(e.stack + "\n");
  return err.exit;
}

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, " ").trim();
}

/** A table with a header row, columns padded to their widest cell. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const fmt = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ").trimEnd();
  return [fmt(header), ...rows.map(fmt)].join("\n");
}

// Times: human output shows ISO-8601 (UTC) or relative times; only JSON carries epoch seconds.

/** `2026-11-23T00:00:00Z` for unix seconds. */
export function isoTime(unixSecs: number): string {
  return new Date(unixSecs * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** `in 5s` / `3m ago` / `now`, relative to `now` (unix seconds). */
export function relTime(unixSecs: number, now = Date.now() / 1000): string {
  const d = Math.round(unixSecs - now);
  const a = Math.abs(d);
  const txt = a < 60
    ? `${a}s`
    : a < 3600
    ? `${Math.floor(a / 60)}m`
    : a < 86400
    ? `${Math.floor(a / 3600)}h`
    : `${Math.floor(a / 86400)}d`;
  return d > 0 ? `in ${txt}` : d === 0 ? "now" : `${txt} ago`;
}

/** `2026-11-23T00:09:00Z (in 9m)`: a moment a reader wants both ways (a ban's end). */
export function whenText(unixSecs: number, now = Date.now() / 1000): string {
  return `${isoTime(unixSecs)} (${relTime(unixSecs, now)})`;
}

/** How long ago, never in the future (clock skew): `3m ago`, `-` for never. */
export function formatAge(unixSecs: number | null | undefined, now = Date.now() / 1000): string {
  if (!unixSecs) return "-";
  const d = Math.max(0, Math.round(now - unixSecs));
  return d === 0 ? "0s ago" : relTime(now - d, now);
}

/**
 * Epoch seconds in message text made readable: the wire carries `banned until <ts>` (docs/protocol.md#messages,
 * §11 relay refusals), and a peer's reason reaches us as text, not as a field to format.
 */
export function humanTimes(message: string, now = Date.now() / 1000): string {
  return message.replace(/\buntil (\d{9,11})\b/g, (_m, ts: string) => `until ${whenText(Number(ts), now)}`);
}

/** `@alice (fid 1234)`, or `@alice (unconfirmed: <reason>)` for a binding that did not check out. */
export function operatorText(o: OperatorInfoView): string {
  return o.status === "verified" ? `@${o.username} (fid ${o.fid})` : `@${o.username} (unconfirmed: ${o.reason})`;
}

/** `atlas_` + 12 hex + `…` (docs/protocol.md#nodes-and-identities), as identity's shortNodeId, without loading its crypto at start-up. */
export const shortId = (id: string): string => id.slice(0, 18) + "…";

/** How a session was reached: `direct`, or `relay (atlas_9a1b…@198.51.100.1:4433)` (docs/protocol.md#dialing, README.md#commands). */
export function pathText(s: { path: string; relay?: string | null; punched?: boolean }): string {
  if (s.path === "direct" && s.punched) return "direct (hole-punched)";
  if (s.path !== "relay" || !s.relay) return s.path;
  const at = s.relay.indexOf("@");
  return `relay (${at > 0 ? `${shortId(s.relay.slice(0, at))}${s.relay.slice(at)}` : s.relay})`;
}
