/** The dial progress line (src/cli/spinner.ts): drawn on a TTY only, erased when the dial ends. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { CLEAR_LINE, spinnerFrame, startSpinner } from "../src/cli/spinner.ts";

/** A stream that records writes and resolves `wrote(n)` once it holds n of them. */
function fakeStream(isTTY: boolean) {
  const writes: string[] = [];
  let waiter: { n: number; resolve: () => void } | null = null;
  return {
    isTTY,
    writes,
    write(s: string) {
      writes.push(s);
      if (waiter && writes.length >= waiter.n) waiter.resolve();
    },
    wrote(n: number): Promise<void> {
      return writes.length >= n ? Promise.resolve() : new Promise((resolve) => (waiter = { n, resolve }));
    },
  };
}

test("a spinner frame redraws one line in place: clear, glyph, text", () => {
  assert.equal(spinnerFrame(0, "waiting for 10.0.0.1:4433…"), `${CLEAR_LINE}⠋ waiting for 10.0.0.1:4433…`);
  assert.equal(spinnerFrame(1, "x"), `${CLEAR_LINE}⠙ x`);
  assert.equal(spinnerFrame(10, "x"), spinnerFrame(0, "x"));
});

test("on a TTY the spinner draws successive frames and erases its line when stopped", async () => {
  const s = fakeStream(true);
  const stop = startSpinner(s, "dialling", { delayMs: 0, frameMs: 1 });
  await s.wrote(3);
  stop();
  const n = s.writes.length;
  assert.deepEqual(s.writes.slice(0, 3), [0, 1, 2].map((i) => spinnerFrame(i, "dialling")));
  assert.equal(s.writes.at(-1), CLEAR_LINE);
  assert.equal(s.writes.filter((w) => w === CLEAR_LINE).length, 1);
  assert.equal(n, s.writes.length, "nothing is written after stop");
});

test("a dial that ends before the delay leaves a TTY untouched", () => {
  const s = fakeStream(true);
  startSpinner(s, "dialling", { delayMs: 60_000, frameMs: 100 })();
  assert.deepEqual(s.writes, []);
});

test("on a stream that is not a TTY the spinner writes nothing", () => {
  const s = fakeStream(false);
  startSpinner(s, "dialling", { delayMs: 0, frameMs: 1 })();
  assert.deepEqual(s.writes, []);
});
