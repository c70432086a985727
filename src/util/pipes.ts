/**
 * Closed output pipes (`atlas id show | head -1`). Node ignores SIGPIPE, so a reader that went
 * away shows up as an EPIPE 'error' event on process.stdout/stderr — fatal, with a stack trace,
 * when nobody listens. The reader has what it wanted: the command exits 0 without a word, so
 * that `set -o pipefail` scripts do not fail because `head` stopped early (git dies of SIGPIPE
 * instead; most CLIs written for Node or Go exit 0 quietly, as here).
 */

/** The error codes by which a write says its reader is gone. */
const CLOSED = new Set(["EPIPE", "ERR_STREAM_DESTROYED", "ECONNRESET"]);

let onClosed: () => void = () => process.exit(0);
let guarded = false;

/** Install the handlers once per process (the CLI's entry calls it before any output). */
export function guardPipes(): void {
  if (guarded) return;
  guarded = true;
  for (const stream of [process.stdout, process.stderr]) {
    stream.on("error", (e: NodeJS.ErrnoException) => {
      if (CLOSED.has(e.code ?? "")) return onClosed();
      // Any other failure of our own output: say so where we still can, never with a stack trace.
      if (stream === process.stdout) process.stderr.write(`error: cannot write to stdout: ${e.message}\n`);
      process.exit(1);
    });
  }
}

/**
 * A long-running command (the daemon) stops gracefully on a closed pipe instead of exiting at
 * once: `fn` runs on the first closed write, later ones are ignored (a second EPIPE while the
 * stop runs must not cut it short; the daemon has its own exit deadline).
 */
export function onPipeClosed(fn: () => void): void {
  let fired = false;
  onClosed = () => {
    if (!fired) fn();
    fired = true;
  };
}
