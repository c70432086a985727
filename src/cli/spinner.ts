/**
 * A progress line on stderr while a dial is pending, for a person at a terminal: a dial can wait
 * `transport.dial_timeout` per candidate in silence otherwise. Only when stderr is a TTY (a pipe or
 * a log file gets nothing extra), only after a short delay (a quick dial shows nothing), and erased
 * before the command prints its result.
 */

/** What the spinner writes to: process.stderr, or a fake one in tests. */
export interface SpinnerStream {
  isTTY?: boolean;
  write(s: string): unknown;
}

const FRAMES = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
/** Back to column 0 and erase the line. */
export const CLEAR_LINE = "\r\x1b[K";

/** The i-th frame: the line redrawn in place. */
export function spinnerFrame(i: number, text: string): string {
  return `${CLEAR_LINE}${FRAMES[i % FRAMES.length]} ${text}`;
}

export interface SpinnerTiming {
  delayMs: number;
  frameMs: number;
}

/** Start drawing (if `stream` is a TTY); the function returned stops and erases the line. */
export function startSpinner(
  stream: SpinnerStream,
  text: string,
  t: SpinnerTiming = { delayMs: 300, frameMs: 100 },
): () => void {
  if (!stream.isTTY) return () => {};
  let i = 0;
  let shown = false;
  let ticker: ReturnType<typeof setInterval> | undefined;
  const draw = () => {
    shown = true;
    stream.write(spinnerFrame(i++, text));
  };
  const delay = setTimeout(() => {
    draw();
    ticker = setInterval(draw, t.frameMs);
  }, t.delayMs);
  return () => {
    clearTimeout(delay);
    clearInterval(ticker);
    if (shown) stream.write(CLEAR_LINE);
  };
}

/** `work` with a spinner on stderr while it is pending. */
export async function withSpinner<T>(
  text: string,
  work: () => Promise<T>,
  stream: SpinnerStream = process.stderr,
): Promise<T> {
  const stop = startSpinner(stream, text);
  try {
    return await work();
  } finally {
    stop();
  }
}
