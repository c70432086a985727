// Writes docs/errors.md from the code tables in src/errors.ts and src/wire/relay-errors.ts
// (`npm run docs:errors`). test/errors-doc.test.ts renders it again and fails when the file differs,
// so a new code or a changed meaning cannot leave the document behind.
import { writeFile } from "node:fs/promises";
import { pathToFileURL } from "node:url";
import { codeInfo, Exit, LOCAL_CODES, PROTOCOL_CODES } from "../src/errors.ts";
import { RELAY_ERRORS, relayErrorName } from "../src/wire/relay-errors.ts";

export const ERRORS_DOC = new URL("../docs/errors.md", import.meta.url);

const exitNames = new Map<number, string>(Object.entries(Exit).map(([name, n]) => [n, name]));

/** `4 (REJECTED)` */
function exitLabel(exit: number): string {
  return `${exit} (${exitNames.get(exit) ?? "?"})`;
}

function table(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...rows.map(line)].join("\n");
}

const INTRO = `# Error codes

<!-- Generated from src/errors.ts and src/wire/relay-errors.ts by \`npm run docs:errors\`; do not edit.
     test/errors-doc.test.ts fails when this file is stale. -->

Every error Atlas raises has a code name (\`ERR_…\`) and an exit code. The CLI prints it as one line
on stderr (\`error: …\`), or as \`{"error":{"code":"ERR_…","message":"…"}}\` with \`--json\`, and exits
with the exit code. The exit code listed is the code's default; a few call sites give their own where
the default would mislead (\`ERR_USAGE\` with exit 1 for "a daemon is already running", say).`;

function exitSection(): string {
  const rows = Object.entries(Exit).map(([name, n]) => [String(n), `\`${name}\``]);
  return `## Exit codes\n\n${table(["exit", "name"], rows)}`;
}

function protocolSection(): string {
  const rows = Object.entries(PROTOCOL_CODES).map(([name, r]) => [
    String(r.code),
    `\`${name}\``,
    exitLabel(r.exit),
    r.meaning,
  ]);
  return `## Protocol codes

Carried in Error frames (\`code\`) and as the application error code of a QUIC CONNECTION_CLOSE
([protocol](protocol.md#messages)). A peer's code arrives as the same name; a number this version does not know reads as
\`ERR_INTERNAL\`.

${table(["code", "name", "exit", "meaning"], rows)}`;
}

function localSection(): string {
  const rows = Object.entries(LOCAL_CODES).map(([name, r]) => [`\`${name}\``, exitLabel(r.exit), r.meaning]);
  return `## Local codes

Raised by this node only; they never travel on the wire.

${table(["name", "exit", "meaning"], rows)}`;
}

/** The dialler's error for a RelayError code, with the banned-source case when it differs. */
function relayOutcome(code: number): string {
  const label = (name: "ERR_REJECTED" | "ERR_UNREACHABLE") => `\`${name}\`, ${exitLabel(codeInfo(name)!.exit)}`;
  const plain = relayErrorName(code, "");
  const banned = relayErrorName(code, "source is banned");
  return plain === banned ? label(plain) : `${label(plain)}; ${label(banned)} when the source is banned`;
}

function relaySection(): string {
  const rows = Object.entries(RELAY_ERRORS).map(([name, r]) => [
    String(r.code),
    `\`${name}\``,
    r.text,
    r.when,
    relayOutcome(r.code),
  ]);
  return `## RelayError codes

Carried in RelayError frames from a relay to the dialler ([protocol](protocol.md#relay); 8 is an Atlas extension). The
dialler turns one into a local error: a refusal of the dialler itself is a rejection (the outbox stops
retrying), anything else means "not through this relay now" (retried).

${table(["code", "name", "text", "when", "dialler's error"], rows)}`;
}

/** The whole of docs/errors.md. */
export function renderErrorsDoc(): string {
  return [INTRO, exitSection(), protocolSection(), localSection(), relaySection()].join("\n\n") + "\n";
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  await writeFile(ERRORS_DOC, renderErrorsDoc());
  console.log(`wrote ${ERRORS_DOC.pathname}`);
}
