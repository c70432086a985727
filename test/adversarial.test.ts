/**
 * The adversarial suite (stress/, issue 16) with a short budget, so CI runs every phase on every
 * change: the long campaign is `npm run stress`. Each phase attacks real processes and reports a
 * row; the test fails with the row's notes when any of its expectations failed.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { type PhaseRow, summaryTable } from "../stress/harness.ts";
import { PHASES } from "../stress/phases.ts";
import { killAll } from "./helpers/cli.ts";

/** Base budget per phase in CI (a phase's weight multiplies it). */
const BASE_MS = Number(process.env.ATLAS_ADVERSARIAL_SECONDS ?? 5) * 1000;
const rows: PhaseRow[] = [];
after(() => {
  killAll();
  console.log(summaryTable(rows));
});

for (const phase of PHASES) {
  test(`the daemon withstands the ${phase.name} phase`, async () => {
    const row = await phase.run({ budgetMs: BASE_MS * (phase.weight ?? 1), long: false, log: () => {} });
    rows.push(row);
    assert.ok(row.ok, `${row.phase}:\n${row.notes.join("\n")}`);
  });
}
