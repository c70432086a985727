/**
 * A small machine-readable schema language for the JSON that Atlas prints and answers (the CLI's
 * `--json`, the control socket; later a library and an MCP server): plain objects that a reader,
 * a validator and the TypeScript types all derive from, with no dependency (it runs under Node
 * and Deno alike). `Infer<typeof X>` is the TS type of a value of shape X; `validate` lists every
 * way a value strays from it. Objects are closed: a field the shape does not name is an error, so
 * the shape and the output cannot drift apart unnoticed.
 */

interface Common {
  /** What the value means, for docs/cli.md. */
  readonly doc: string;
  /** null is a value of it too. */
  readonly nullable?: boolean;
  /** A field that may be left out (only where the docs say when). */
  readonly optional?: boolean;
}

export type Spec =
  | (Common & { readonly type: "string"; readonly values?: readonly string[] })
  | (Common & { readonly type: "integer" | "number" | "boolean" | "any" })
  | (Common & { readonly type: "array"; readonly of: Spec })
  | (Common & { readonly type: "map"; readonly of: Spec })
  | (Common & { readonly type: "object"; readonly fields: Fields; readonly name?: string });

export type Fields = { readonly [key: string]: Spec };

/** Builders: `s.string("…")`, `s.nullable(s.integer("…"))`, `s.object({…}, "…")`. */
export const s = {
  string: (doc: string) => ({ type: "string", doc }) as const,
  oneOf: <const V extends readonly string[]>(values: V, doc: string) => ({ type: "string", values, doc }) as const,
  integer: (doc: string) => ({ type: "integer", doc }) as const,
  number: (doc: string) => ({ type: "number", doc }) as const,
  boolean: (doc: string) => ({ type: "boolean", doc }) as const,
  any: (doc: string) => ({ type: "any", doc }) as const,
  array: <const O extends Spec>(of: O, doc: string) => ({ type: "array", of, doc }) as const,
  map: <const O extends Spec>(of: O, doc: string) => ({ type: "map", of, doc }) as const,
  object: <const F extends Fields>(fields: F, doc: string) => ({ type: "object", fields, doc }) as const,
  /** A named object: documented once under its name and referred to by it elsewhere. */
  shape: <const N extends string, const F extends Fields>(name: N, fields: F, doc: string) =>
    ({ type: "object", name, fields, doc }) as const,
  nullable: <const T extends Spec>(spec: T) => ({ ...spec, nullable: true }) as const,
  optional: <const T extends Spec>(spec: T) => ({ ...spec, optional: true }) as const,
  /** The same spec with another meaning (a shared shape used as one field). */
  as: <const T extends Spec>(spec: T, doc: string) => ({ ...spec, doc }) as const,
};

type Base<S> = S extends { type: "string"; values: readonly (infer V)[] } ? V
  : S extends { type: "string" } ? string
  : S extends { type: "integer" | "number" } ? number
  : S extends { type: "boolean" } ? boolean
  : S extends { type: "any" } ? unknown
  : S extends { type: "array"; of: infer O } ? Infer<O>[]
  : S extends { type: "map"; of: infer O } ? Record<string, Infer<O>>
  : S extends { type: "object"; fields: infer F } ? ObjectOf<F>
  : never;

type Req<F> = { -readonly [K in keyof F as F[K] extends { optional: true } ? never : K]: Infer<F[K]> };
type Opt<F> = { -readonly [K in keyof F as F[K] extends { optional: true } ? K : never]?: Infer<F[K]> };
type ObjectOf<F> = Req<F> & Opt<F>;

/** The TypeScript type of a value of shape S. */
export type Infer<S> = S extends { nullable: true } ? Base<S> | null : Base<S>;

/** Every way `v` strays from `spec`, as `path: problem` lines; empty when it conforms. */
export function validate(spec: Spec, v: unknown, path = "$"): string[] {
  if (v === null) return spec.nullable ? [] : [`${path}: null, expected ${typeName(spec)}`];
  switch (spec.type) {
    case "any":
      return [];
    case "string":
      if (typeof v !== "string") return [`${path}: ${kindOf(v)}, expected string`];
      return spec.values && !spec.values.includes(v) ? [`${path}: '${v}' is not one of ${spec.values.join(", ")}`] : [];
    case "integer":
      return Number.isSafeInteger(v) ? [] : [`${path}: ${kindOf(v)}, expected integer`];
    case "number":
      return typeof v === "number" && Number.isFinite(v) ? [] : [`${path}: ${kindOf(v)}, expected number`];
    case "boolean":
      return typeof v === "boolean" ? [] : [`${path}: ${kindOf(v)}, expected boolean`];
    case "array":
      if (!Array.isArray(v)) return [`${path}: ${kindOf(v)}, expected array`];
      return v.flatMap((x, i) => validate(spec.of, x, `${path}[${i}]`));
    case "map":
      if (!isRecord(v)) return [`${path}: ${kindOf(v)}, expected object`];
      return Object.entries(v).flatMap(([k, x]) => validate(spec.of, x, `${path}.${k}`));
    case "object":
      return validateObject(spec.fields, v, path);
  }
}

function validateObject(fields: Fields, v: unknown, path: string): string[] {
  if (!isRecord(v)) return [`${path}: ${kindOf(v)}, expected object`];
  const problems = Object.keys(v).filter((k) => !(k in fields)).map((k) => `${path}.${k}: not in the shape`);
  for (const [k, f] of Object.entries(fields)) {
    if (!(k in v)) {
      if (!f.optional) problems.push(`${path}.${k}: missing`);
    } else problems.push(...validate(f, v[k], `${path}.${k}`));
  }
  return problems;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function kindOf(v: unknown): string {
  return Array.isArray(v) ? "array" : v === null ? "null" : typeof v;
}

/** `string`, `integer | null`, `session[]`, `"a" | "b"`: how docs/cli.md writes a type. */
export function typeName(spec: Spec): string {
  const base = spec.type === "object"
    ? spec.name ?? "object"
    : spec.type === "array"
    ? `${arrayItem(spec.of)}[]`
    : spec.type === "map"
    ? `{ [key]: ${typeName(spec.of)} }`
    : spec.type === "string" && spec.values
    ? spec.values.map((x) => `"${x}"`).join(" \\| ")
    : spec.type;
  return spec.nullable ? `${base} \\| null` : base;
}

function arrayItem(of: Spec): string {
  const t = typeName(of);
  return of.nullable || (of.type === "string" && of.values) ? `(${t})` : t;
}
