/** Bounded waiting for the phases: every poll has a deadline, and says what it waited for. */
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Poll `probe` every `everyMs` until `ok` holds or `ms` have passed; returns the last value and
 * whether it held (a phase records a failed wait as a failed expectation, it does not throw).
 */
export async function until<T>(
  probe: () => Promise<T>,
  ok: (v: T) => boolean,
  ms: number,
  everyMs = 200,
): Promise<{ value: T; held: boolean }> {
  const end = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (ok(value)) return { value, held: true };
    if (Date.now() >= end) return { value, held: false };
    await sleep(everyMs);
  }
}
