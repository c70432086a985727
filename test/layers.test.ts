/**
 * The layering rules of docs/architecture.md ("Layers and imports"), checked on every module under
 * src/: what each folder may import (static, dynamic and type-only imports alike), which npm
 * packages stay inside one folder, and that SQL is written in src/store/ only. An exception is
 * listed below with its reason and in docs/architecture.md; one that no longer occurs fails too, so
 * the list stays exact.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const SRC = fileURLToPath(new URL("../src/", import.meta.url));

/** Imported from every layer. */
const BASE = ["config", "util", "errors.ts", "version.ts"];
const NET_AND_BELOW = [...BASE, "net", "handshake", "wire", "stun", "transport", "identity", "operator", "store"];

/**
 * What each folder (or top-level file) of src/ may import besides itself. The stack, top to bottom:
 * cli → mcp → api (the library; src/index.ts is its entry) → daemon → relay, bootstrap (services) → net → handshake → wire, stun → transport; identity,
 * operator and store are shared below net.
 */
const ALLOWED: Record<string, readonly string[]> = {
  "errors.ts": [],
  "version.ts": [],
  util: ["errors.ts"],
  config: ["util", "errors.ts"],
  store: BASE,
  transport: BASE,
  wire: [...BASE, "transport"],
  stun: [...BASE, "transport"],
  identity: [...BASE, "wire"],
  operator: [...BASE, "wire"],
  handshake: [...BASE, "wire", "transport", "identity", "operator"],
  net: NET_AND_BELOW.filter((d) => d !== "net"),
  relay: NET_AND_BELOW,
  bootstrap: NET_AND_BELOW,
  metrics: BASE,
  daemon: [...NET_AND_BELOW, "relay", "bootstrap", "metrics"],
  devnet: [...BASE, "identity", "daemon"],
  netcheck: NET_AND_BELOW,
  api: [...NET_AND_BELOW, "bootstrap", "daemon"],
  "index.ts": ["api", "daemon", "errors.ts"],
  mcp: [...BASE, "api", "daemon"],
  cli: [...NET_AND_BELOW, "relay", "bootstrap", "daemon", "metrics", "devnet", "netcheck", "api", "mcp"],
};

/** Imports that break the order on purpose: `from` → `to`, both relative to src/. */
const EXCEPTIONS: { from: string; to: string; why: string }[] = [
  {
    from: "net/dial.ts",
    to: "relay/dial.ts",
    why: "the relay branch of dialPeer's race; loaded lazily (docs/architecture.md, decisions.md 'Layering')",
  },
];

/** npm packages only one folder may import. */
const PACKAGE_HOME: Record<string, string> = {
  "@libsql/client": "store",
  "@matrixai/quic": "transport",
  "prom-client": "metrics",
};

/** SQL statements (upper case, as src/store/ writes them; prose does not match). */
const SQL =
  /\b(?:SELECT\b[\s\S]*?\bFROM|INSERT\b[\s\S]*?\bINTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+(?:TABLE|(?:UNIQUE\s+)?INDEX|TRIGGER|VIEW)|DROP\s+(?:TABLE|INDEX)|ALTER\s+TABLE|PRAGMA\s+\w+)\b/;

interface Module {
  /** Relative to src/, with forward slashes. */
  path: string;
  imports: { spec: string; line: number }[];
  strings: { text: string; line: number }[];
}

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return tsFiles(p);
    return e.name.endsWith(".ts") ? [p] : [];
  });
}

function scan(file: string, text = readFileSync(file, "utf8")): Module {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const m: Module = { path: relative(SRC, file).split(sep).join("/"), imports: [], strings: [] };
  const line = (n: ts.Node) => sf.getLineAndCharacterOfPosition(n.getStart(sf)).line + 1;
  const visit = (n: ts.Node): void => {
    if ((ts.isImportDeclaration(n) || ts.isExportDeclaration(n)) && n.moduleSpecifier) {
      if (ts.isStringLiteral(n.moduleSpecifier)) m.imports.push({ spec: n.moduleSpecifier.text, line: line(n) });
    } else if (ts.isCallExpression(n) && n.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const a = n.arguments[0];
      if (a && ts.isStringLiteralLike(a)) m.imports.push({ spec: a.text, line: line(n) });
    } else if (ts.isImportTypeNode(n) && ts.isLiteralTypeNode(n.argument) && ts.isStringLiteral(n.argument.literal)) {
      m.imports.push({ spec: n.argument.literal.text, line: line(n) });
    }
    if (ts.isStringLiteral(n) || ts.isNoSubstitutionTemplateLiteral(n)) {
      m.strings.push({ text: n.text, line: line(n) });
    } else if (ts.isTemplateExpression(n)) {
      const text = n.head.text + n.templateSpans.map((s) => "${…}" + s.literal.text).join("");
      m.strings.push({ text, line: line(n) });
      for (const s of n.templateSpans) visit(s.expression); // nested literals
      return;
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return m;
}

/** `net` for src/net/holepunch/puncher.ts, `errors.ts` for src/errors.ts. */
const folderOf = (path: string) => path.split("/")[0]!;

/** The src/-relative path an import names, or null when it leaves src/ or is a package. */
function target(from: string, spec: string): string | null {
  if (!spec.startsWith(".")) return null;
  const abs = join(SRC, dirname(from), spec);
  const rel = relative(SRC, abs).split(sep).join("/");
  return rel.startsWith("..") ? null : rel;
}

const modules = tsFiles(SRC).map((f) => scan(f));

test("the scan sees the tree: modules, relative imports and store/'s SQL", () => {
  assert.ok(modules.length > 50, `only ${modules.length} modules under src/`);
  assert.ok(modules.reduce((n, m) => n + m.imports.length, 0) > 300);
  const sql = modules.filter((m) => folderOf(m.path) === "store" && m.strings.some((s) => SQL.test(s.text)));
  assert.ok(sql.length >= 3, "the SQL pattern no longer matches src/store/'s statements");
});

test("nothing outside src/cli/ imports src/cli/", () => {
  const bad: string[] = [];
  for (const m of modules) {
    if (folderOf(m.path) === "cli") continue;
    for (const i of m.imports) {
      const t = target(m.path, i.spec);
      if (t && folderOf(t) === "cli") bad.push(`src/${m.path}:${i.line} imports ${i.spec}`);
    }
  }
  assert.deepEqual(bad, [], "a node must run without the CLI: move what is needed below cli/ (e.g. daemon/, config/)");
});

test("every folder imports only the layers below it (docs/architecture.md)", () => {
  const bad: string[] = [];
  const used = new Set<string>();
  for (const m of modules) {
    const own = folderOf(m.path);
    const allowed = ALLOWED[own];
    if (!allowed) {
      bad.push(`src/${own} is not in test/layers.test.ts's ALLOWED map: place it in the layers`);
      continue;
    }
    for (const i of m.imports) {
      const t = target(m.path, i.spec);
      if (!t) continue;
      const dep = folderOf(t);
      if (dep === own || allowed.includes(dep)) continue;
      const ex = EXCEPTIONS.find((e) => e.from === m.path && e.to === t);
      if (ex) {
        used.add(`${ex.from} → ${ex.to}`);
        continue;
      }
      bad.push(`src/${m.path}:${i.line} (${own}/) imports ${i.spec} (${dep})`);
    }
  }
  for (const e of EXCEPTIONS) {
    if (!used.has(`${e.from} → ${e.to}`)) bad.push(`stale exception ${e.from} → ${e.to}: remove it here and in docs`);
  }
  assert.deepEqual(bad, []);
});

test("npm packages with one home are imported only there", () => {
  const bad: string[] = [];
  for (const m of modules) {
    for (const i of m.imports) {
      for (const [pkg, home] of Object.entries(PACKAGE_HOME)) {
        if ((i.spec === pkg || i.spec.startsWith(pkg + "/")) && folderOf(m.path) !== home) {
          bad.push(`src/${m.path}:${i.line} imports ${i.spec} (only src/${home}/ may)`);
        }
      }
    }
  }
  assert.deepEqual(bad, []);
});

test("SQL is written in src/store/ only", () => {
  const bad: string[] = [];
  for (const m of modules) {
    if (folderOf(m.path) === "store") continue;
    for (const s of m.strings) {
      if (SQL.test(s.text)) bad.push(`src/${m.path}:${s.line}: ${JSON.stringify(s.text.slice(0, 80))}`);
    }
  }
  assert.deepEqual(bad, [], "other code goes through the typed API of src/store/index.ts");
});

test("the checks catch what they are for", () => {
  const p = scan(
    join(SRC, "net", "probe.ts"),
    `import type { Ctx } from "../cli/context.ts";
    const d = await import("../daemon/daemon.ts");
    export type { Session } from "./session.ts";
    type Q = import("../store/index.ts").Store;
    const q = "DELETE FROM peers WHERE node_id = ?";
    const r = \`SELECT \${cols} FROM sessions\`;
    const ok = "select a node from the list, then delete it from the registry";`,
  );
  assert.equal(p.path, "net/probe.ts");
  assert.deepEqual(p.imports.map((i) => target(p.path, i.spec)), [
    "cli/context.ts",
    "daemon/daemon.ts",
    "net/session.ts",
    "store/index.ts",
  ]);
  assert.ok(!ALLOWED.net!.includes("cli") && !ALLOWED.net!.includes("daemon"));
  assert.deepEqual(p.strings.filter((s) => SQL.test(s.text)).map((s) => s.line), [5, 6]);
});
