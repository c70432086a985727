/**
 * `npm run stress`: the adversarial suite, long campaign (issue 16). Prints each phase's notes and
 * the summary table; exits 1 when any phase failed.
 *
 *   STRESS_ONLY=fuzz,memory     run only these phases
 *   STRESS_SECONDS=60           base budget per phase (default 60; CI's test uses a few seconds)
 *   STRESS_MESSAGES=600         messages of the impairment phase (default 1000, 60 below 30 s)
 */
import { type PhaseRow, summaryTable } from "./harness.ts";
import { PHASES } from "./phases.ts";

const only = process.env.STRESS_ONLY?.split(",").map((s) => s.trim()).filter(Boolean);
const base = Number(process.env.STRESS_SECONDS ?? 60) * 1000;

const rows: PhaseRow[] = [];
for (const phase of PHASES) {
  if (only && !only.includes(phase.name)) continue;
  const started = Date.now();
  console.log(`\n== ${phase.name}`);
  const row = await phase.run({ budgetMs: base * (phase.weight ?? 1), long: true, log: (l) => console.log(`   ${l}`) })
    .catch((e: unknown) => ({
      phase: phase.name,
      attempts: 0,
      outcomes: {},
      ok: false,
      notes: [`FAILED: ${(e as Error).stack ?? e}`],
    }));
  for (const n of row.notes) console.log(`   ${n}`);
  console.log(`   ${row.ok ? "ok" : "FAILED"} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  rows.push(row);
}
console.log(`\n${summaryTable(rows)}`);
process.exit(rows.every((r) => r.ok) ? 0 : 1);
