/**
 * Whether a phase runs at the full scale (1,000 messages, 500 peers, …) or at the CI
 * pass's reduced one. `npm run stress` always says `long`, so the budget decides too: a base of
 * STRESS_SECONDS=5 must keep each phase near 30 s; 30 s and more buys the full campaign.
 */
import type { PhaseContext } from "./harness.ts";

export const FULL_SCALE_BUDGET_MS = 30_000;

export function fullScale(ctx: PhaseContext): boolean {
  return ctx.long && ctx.budgetMs >= FULL_SCALE_BUDGET_MS;
}
