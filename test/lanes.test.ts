/** The test lanes (scripts/test-lanes.ts): every file in exactly one, and the unit lane stays fast. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { allTests, lane, NAT, UNIT } from "../scripts/test-lanes.ts";

test("every test file runs in exactly one lane", () => {
  const lanes = [...lane("unit"), ...lane("e2e"), ...lane("nat")].sort();
  assert.deepEqual(lanes, allTests());
});

test("the unit and nat lanes name only files that exist", () => {
  const all = new Set(allTests());
  assert.deepEqual([...UNIT, ...NAT].filter((t) => !all.has(t)), []);
});
