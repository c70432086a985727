/**
 * Work that must run before this process blocks its event loop. A node's statements against its
 * store are synchronous (libSQL's file driver runs them on this thread: 0.1–1 ms each, an fsync'd
 * commit more); packets written earlier in the turn would wait behind them. The transport
 * registers a hook that sends what was written and not yet sent; the store calls `beforeBlocking`
 * before each statement or transaction. Lives in util/ so neither layer imports the other.
 */
const hooks = new Set<() => void>();

/** Run every hook (cheap when nothing is pending: each checks its own state). */
export function beforeBlocking(): void {
  for (const h of hooks) h();
}

/** Register `h`; returns its removal. */
export function onBeforeBlocking(h: () => void): () => void {
  hooks.add(h);
  return () => void hooks.delete(h);
}
