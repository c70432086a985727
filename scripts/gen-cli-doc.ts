// Writes docs/cli.md from the command contract (src/cli/contract.ts) and the JSON shapes
// (src/daemon/shapes.ts): `npm run docs:cli`. test/cli-json.test.ts renders it again and fails when
// the file differs, so a changed shape or command cannot leave the document behind.
import { writeFile } from "node:fs/promises";
import { pathToFileURL } from "node:url";
import { type CommandContract, CONTRACT, ERROR_CONTRACT } from "../src/cli/contract.ts";
import { type Spec, typeName } from "../src/daemon/schema.ts";

export const CLI_DOC = new URL("../docs/cli.md", import.meta.url);

const INTRO = `# CLI output

<!-- Generated from src/cli/contract.ts and src/daemon/shapes.ts by \`npm run docs:cli\`; do not edit.
     test/cli-json.test.ts fails when this file is stale, and checks every command's --json output
     against these shapes. -->

Every command prints a human form by default and a JSON form with \`--json\`. The JSON rules:

- **One shape per object.** A session, a peer, a message, a send result, an error… has one shape,
  the same in every command that prints it (defined once in \`src/daemon/shapes.ts\`).
- **One document per command**: a JSON object, or for a list command (\`net peers\`) a JSON array
  of one shape (\`[]\` when empty). **Streams are NDJSON**: \`net inbox\` (with or without
  \`--follow\`, so a script reads both the same way) and the \`listening\` event of \`daemon\`,
  \`relay\` and \`bootstrap\` print one object per line.
- **snake_case** field names; **times in Unix seconds** (human output shows ISO-8601 or relative
  times); node IDs in full; a field without a value is \`null\`, never left out (\`status\` leaves
  out the daemon's fields when none runs). Objects are closed: no other fields appear.
- **Errors** go to stderr as one \`error\` document; the exit code follows
  [docs/errors.md](errors.md).
`;

function kindText(c: CommandContract): string {
  const name = `[\`${typeName(c.shape)}\`](#${anchor(typeName(c.shape))})`;
  if (c.kind === "list") return `a JSON array of ${name}`;
  if (c.kind === "stream") return `NDJSON: one ${name} per line`;
  return c.shape.type === "object" ? `one ${name}` : `one JSON value (${c.shape.doc})`;
}

const anchor = (name: string) => name.toLowerCase();

function commandSection(c: CommandContract): string {
  const title = c === ERROR_CONTRACT ? "Errors (any command)" : `\`atlas ${c.command}\``;
  return `### ${title}\n\n\`--json\`: ${kindText(c)}\n\n\`\`\`\n${c.human}\n\`\`\``;
}

/** Field rows of an object, nested unnamed objects flattened as `a.b` / `a[].b`. */
function fieldRows(spec: Spec, prefix = ""): string[][] {
  if (spec.type !== "object") return [];
  return Object.entries(spec.fields).flatMap(([k, f]) => {
    const path = `${prefix}${k}`;
    const row = [`\`${path}\``, typeText(f), f.optional ? `${f.doc} (only while a daemon runs)` : f.doc];
    if (f.type === "object" && !f.name) return [row, ...fieldRows(f, `${path}.`)];
    if (f.type === "array" && f.of.type === "object" && !f.of.name) return [row, ...fieldRows(f.of, `${path}[].`)];
    return [row];
  });
}

function typeText(f: Spec): string {
  return typeName(f).replace(/^(\w+)/, (n) => (isShapeName(n) ? `[${n}](#${anchor(n)})` : n));
}

let shapeNames = new Set<string>();
const isShapeName = (n: string) => shapeNames.has(n);

function namedShapes(): Map<string, Spec> {
  const out = new Map<string, Spec>();
  const visit = (s: Spec) => {
    if (s.type === "object") {
      if (s.name && !out.has(s.name)) out.set(s.name, s);
      Object.values(s.fields).forEach(visit);
    } else if (s.type === "array" || s.type === "map") visit(s.of);
  };
  [...CONTRACT, ERROR_CONTRACT].forEach((c) => visit(c.shape));
  return out;
}

function shapeSection(name: string, spec: Spec): string {
  const rows = fieldRows(spec).map((r) => `| ${r.join(" | ")} |`);
  return `### ${name}\n\n${spec.doc}.\n\n| field | type | meaning |\n| --- | --- | --- |\n${rows.join("\n")}`;
}

export function renderCliDoc(): string {
  const shapes = namedShapes();
  shapeNames = new Set(shapes.keys());
  const commands = [...CONTRACT, ERROR_CONTRACT].map(commandSection).join("\n\n");
  const sorted = [...shapes.entries()].sort(([a], [b]) => a.localeCompare(b));
  return `${INTRO}\n## Commands\n\n${commands}\n\n## Shapes\n\n${
    sorted.map(([n, s]) => shapeSection(n, s)).join("\n\n")
  }\n`;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  await writeFile(CLI_DOC, renderCliDoc());
  console.log(`wrote ${CLI_DOC.pathname}`);
}
