/** Unix seconds (docs/protocol.md#messages timestamps). */
export const unixNow = (): number => Math.floor(Date.now() / 1000);

/** Resolve after `ms`; the timer does not outlive an abort. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * Wait for `p` at most `ms`; resolves to `undefined` on timeout (or rejects with `onTimeout()`
 * when given). The timer is always cleared, so a finished wait never keeps the process alive.
 */
export async function within<T>(p: Promise<T>, ms: number, onTimeout?: () => Error): Promise<T | undefined> {
  let t: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<undefined>((resolve, reject) => {
    t = setTimeout(() => (onTimeout ? reject(onTimeout()) : resolve(undefined)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(t);
  }
}
