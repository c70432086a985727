/** Counts of one fuzz driver: frames sent, outcomes by label, spec violations with examples. */
import type { Verdict } from "./fuzz-oracle.ts";

const MAX_EXAMPLES = 8;

export class Tally {
  sent = 0;
  /** Seconds its stage ran (for the rate). */
  secs = 0;
  violations = 0;
  readonly outcomes = new Map<string, number>();
  readonly examples: string[] = [];
  /** Violations by reason (first words), to tell a known defect from a new one. */
  readonly reasons = new Map<string, number>();

  constructor(readonly name: string) {}

  record(label: string, v: Verdict, op: string, bytes: Uint8Array): void {
    this.sent++;
    this.outcomes.set(label, (this.outcomes.get(label) ?? 0) + 1);
    if (v.ok) return;
    this.violations++;
    const why = v.why ?? "?";
    this.reasons.set(why, (this.reasons.get(why) ?? 0) + 1);
    if (this.examples.length < MAX_EXAMPLES) {
      const hex = Buffer.from(bytes.subarray(0, 48)).toString("hex");
      this.examples.push(`${this.name}: ${why} — ${op}, ${bytes.length} B: ${hex}${bytes.length > 48 ? "…" : ""}`);
    }
  }
}
