import { AtlasError, Exit } from "../errors.ts";
import type { OperatorInfoView } from "../daemon/ops.ts";
import type { Listening } from "../daemon/daemon.ts";

/** Where a command writes: stdout for results, stderr for errors; `json` switches the format. */
export interface Output {
  json: boolean;
  line(s: string): void;
  /** `Label : value` lines with labels padded to one column (SPEC §14 output shapes). */
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

/** One line on stderr (or a JSON error document) and the exit code for it (SPEC §14). */
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
  else write(`error: ${message}\n`);
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

export function formatAge(unixSecs: number | null | undefined, now = Date.now() / 1000): string {
  if (!unixSecs) return "-";
  const d = Math.max(0, Math.round(now - unixSecs));
  if (d < 60) return `${d}s ago`;
  if (d < 3600) return `${Math.floor(d / 60)}m ago`;
  if (d < 86400) return `${Math.floor(d / 3600)}h ago`;
  return `${Math.floor(d / 86400)}d ago`;
}

/** `@alice (fid 1234)`, or `@alice (unconfirmed: <reason>)` for a binding that did not check out. */
export function operatorText(o: OperatorInfoView): string {
  return o.status === "verified" ? `@${o.username} (fid ${o.fid})` : `@${o.username} (unconfirmed: ${o.reason})`;
}

/** `atlas_` + 12 hex + `…` (SPEC §3), as identity's shortNodeId, without loading its crypto at start-up. */
export const shortId = (id: string): string => id.slice(0, 18) + "…";

/** How a session was reached: `direct`, or `relay (atlas_9a1b…@198.51.100.1:4433)` (SPEC §7, §14). */
export function pathText(s: { path: string; relay?: string | null; punched?: boolean }): string {
  if (s.path === "direct" && s.punched) return "direct (hole-punched)";
  if (s.path !== "relay" || !s.relay) return s.path;
  const at = s.relay.indexOf("@");
  return `relay (${at > 0 ? `${shortId(s.relay.slice(0, at))}${s.relay.slice(at)}` : s.relay})`;
}
