/**
 * The adversarial suite's frame (issue 16): each phase attacks real processes on loopback (or in
 * namespaces it creates), bounded in count and in time, and reports one row of the summary table.
 * `npm run stress` runs the long campaign; `test/adversarial.test.ts` runs the same phases with a
 * short budget in CI.
 */
import { rssOf } from "../test/helpers/memory-attack.ts";

export interface PhaseContext {
  /** Wall-clock budget of this phase, in ms; a phase stops starting new work past it. */
  budgetMs: number;
  /** The long campaign (npm run stress) rather than the CI pass. */
  long: boolean;
  log: (line: string) => void;
}

export interface PhaseRow {
  phase: string;
  /** Hostile inputs sent (frames, packets, dials, messages…). */
  attempts: number;
  /** What came back, by kind (e.g. `Error 2003`, `refused`, `delivered once`). */
  outcomes: Record<string, number>;
  /** The victim's RSS before and after, in bytes, when one process was the target. */
  rssBefore?: number;
  rssAfter?: number;
  /** Every assertion of the phase held. */
  ok: boolean;
  /** Why not, or figures worth keeping (rates, peaks). */
  notes: string[];
}

export interface Phase {
  name: string;
  /** Budget share: phases get `weight` × the base budget. */
  weight?: number;
  run(ctx: PhaseContext): Promise<PhaseRow>;
}

/** A failed expectation inside a phase: recorded in the row's notes, the phase goes on. */
export function expect(row: PhaseRow, cond: boolean, what: string): void {
  if (cond) return;
  row.ok = false;
  row.notes.push(`FAILED: ${what}`);
}

export function newRow(phase: string): PhaseRow {
  return { phase, attempts: 0, outcomes: {}, ok: true, notes: [] };
}

export function count(row: PhaseRow, outcome: string, n = 1): void {
  row.outcomes[outcome] = (row.outcomes[outcome] ?? 0) + n;
}

/** RSS of `pid`, or undefined when it is gone. */
export function rss(pid: number): number | undefined {
  try {
    return rssOf(pid);
  } catch {
    return undefined;
  }
}

const MiB = 1024 * 1024;
export function mib(bytes: number | undefined): string {
  return bytes === undefined ? "–" : `${(bytes / MiB).toFixed(0)} MiB`;
}

/** The summary table, as Markdown (printed, and pasted into docs/reliability.md). */
export function summaryTable(rows: PhaseRow[]): string {
  const lines = [
    "| phase | attempts | outcomes | RSS before → after | result |",
    "|---|---:|---|---|---|",
  ];
  for (const r of rows) {
    const outcomes = Object.entries(r.outcomes).map(([k, v]) => `${k}: ${v}`).join(", ");
    const mem = r.rssBefore === undefined ? "–" : `${mib(r.rssBefore)} → ${mib(r.rssAfter)}`;
    const result = r.ok ? "ok" : "**FAILED**";
    lines.push(`| ${r.phase} | ${r.attempts} | ${outcomes} | ${mem} | ${result} |`);
  }
  return lines.join("\n");
}
