import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { AtlasError, Exit, LOCAL_CODES, PROTOCOL_CODES, ProtocolCode, protocolCodeName } from "../src/errors.ts";
import { RELAY_ERRORS, RelayErrorCode } from "../src/wire/relay-errors.ts";
import { ERRORS_DOC, renderErrorsDoc } from "../scripts/gen-errors-doc.ts";

const exits = new Set<number>(Object.values(Exit));

test("docs/errors.md is what `npm run docs:errors` generates from the code tables", async () => {
  const onDisk = await readFile(ERRORS_DOC, "utf8");
  assert.equal(onDisk, renderErrorsDoc(), "docs/errors.md is stale: run `npm run docs:errors`");
});

test("every protocol code has a distinct number, a meaning and an exit code an AtlasError takes", () => {
  const numbers = new Set<number>();
  for (const [name, row] of Object.entries(PROTOCOL_CODES)) {
    assert.ok(row.meaning.length > 0, `${name} has a meaning`);
    assert.ok(exits.has(row.exit), `${name} maps to an exit code`);
    assert.equal(new AtlasError(name as keyof typeof PROTOCOL_CODES, "x").exit, row.exit);
    assert.equal(ProtocolCode[name as keyof typeof ProtocolCode], row.code);
    assert.equal(protocolCodeName(row.code), name);
    assert.ok(!numbers.has(row.code), `${row.code} is used once`);
    numbers.add(row.code);
  }
});

test("every local code has a meaning and an exit code an AtlasError takes", () => {
  for (const [name, row] of Object.entries(LOCAL_CODES)) {
    assert.ok(row.meaning.length > 0, `${name} has a meaning`);
    assert.ok(exits.has(row.exit), `${name} maps to an exit code`);
    assert.equal(new AtlasError(name as keyof typeof LOCAL_CODES, "x").exit, row.exit);
    assert.ok(!(name in PROTOCOL_CODES), `${name} is not also a protocol code`);
  }
});

test("every RelayError code has a distinct number, a text and when it is sent", () => {
  const numbers = Object.values(RELAY_ERRORS).map((r) => r.code);
  assert.equal(new Set(numbers).size, numbers.length);
  for (const [name, row] of Object.entries(RELAY_ERRORS)) {
    assert.ok(row.text.length > 0 && row.when.length > 0, `${name} is described`);
    assert.equal(RelayErrorCode[name as keyof typeof RelayErrorCode], row.code);
  }
});
