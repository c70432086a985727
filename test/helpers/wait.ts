/**
 * The one way tests wait: poll a condition until it holds or a deadline passes. Tests never sleep
 * to synchronise; they name what they wait for, so a timeout says what did not happen.
 */

export interface WaitOptions {
  /** Give up after this long (default 15 s: a failure deadline, never a delay for a passing test). */
  timeoutMs?: number;
  /** Poll this often (default 25 ms). */
  intervalMs?: number;
  /** What was seen last, named in the timeout message (e.g. the last status). */
  lastSeen?: () => unknown;
}

/**
 * Resolves with the first truthy value `probe` returns; throws `timed out waiting for <what>`
 * after the deadline. A probe that throws is retried (a daemon may not be up yet) and its last
 * error is named in the timeout.
 */
export async function waitFor<T>(
  what: string,
  probe: () => T | null | undefined | false | Promise<T | null | undefined | false>,
  o: WaitOptions = {},
): Promise<T> {
  const deadline = Date.now() + (o.timeoutMs ?? 15_000);
  let lastError: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() > deadline) {
      const seen = o.lastSeen ? `; last seen: ${JSON.stringify(o.lastSeen())}` : "";
      const why = (lastError instanceof Error ? ` (last error: ${lastError.message})` : "") + seen;
      throw new Error(`timed out waiting for ${what} within ${o.timeoutMs ?? 15_000} ms${why}`);
    }
    await pause(o.intervalMs ?? 25);
  }
}

/**
 * Lets time pass on purpose: for tests whose subject is time itself (a timeout that must NOT fire
 * early, a rate window), never to wait for something to happen — use `waitFor` for that.
 */
export function pause(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Whether `cond` comes to hold within `timeoutMs` (polled every 10 ms): for retry loops over a
 * lossy path (resend, then give the answer a moment) and for asserting with a custom message.
 */
export async function holdsWithin(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  return await waitFor("the condition", cond, { timeoutMs, intervalMs: 10 }).then(() => true, () => false);
}
