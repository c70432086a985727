/**
 * The body of `net send`, `net reply` and `net request` (README.md#commands): the argument, stdin
 * (`-`) or a file (`--body-file`), so that a script can send any body up to the wire limit (argv
 * stops near 128 KiB). JSON text is sent verbatim; other text becomes a JSON string — except text
 * that starts like a JSON object or array but does not parse, which is almost always a broken
 * document rather than prose: it is refused (exit 2) unless `--text` says to send it as a string.
 */
import { readFile } from "node:fs/promises";
import { AtlasError } from "../errors.ts";
import { MAX_BODY_BYTES, normalizeBody } from "../net/messaging.ts";
import { isJsonText } from "../wire/json-text.ts";

export interface BodyOptions {
  bodyFile?: string;
  text?: boolean;
}

/** Read at most `limit` bytes (+1 to tell "too big") from stdin. */
async function readStdin(limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of process.stdin as AsyncIterable<Buffer>) {
    chunks.push(c);
    n += c.length;
    if (n > limit) throw new AtlasError("ERR_USAGE", `message body is over ${limit} bytes; the limit is ${limit}`);
  }
  return Buffer.concat(chunks).toString("utf8");
}

async function readBodyFile(path: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (e) {
    throw new AtlasError("ERR_USAGE", `cannot read --body-file ${path}: ${(e as NodeJS.ErrnoException).code ?? e}`);
  }
}

/** The raw text the user gave: the argument, `-` for stdin, or --body-file. */
// deno-lint-ignore require-await -- a usage error thrown here reaches the caller as a rejection
export async function bodyText(arg: string | undefined, o: BodyOptions): Promise<string> {
  if (o.bodyFile !== undefined) {
    if (arg !== undefined) throw new AtlasError("ERR_USAGE", "give the body as an argument or --body-file, not both");
    return readBodyFile(o.bodyFile);
  }
  if (arg === undefined) {
    throw new AtlasError("ERR_USAGE", "missing message body: give it, `-` for stdin, or --body-file");
  }
  return arg === "-" ? readStdin(MAX_BODY_BYTES) : arg;
}

/** The JSON text to send for `text` (see the module comment). */
export function bodyJson(text: string, o: BodyOptions): string {
  if (o.text) return JSON.stringify(text);
  const head = text.trimStart()[0];
  if ((head === "{" || head === "[") && !isJsonText(text)) {
    throw new AtlasError(
      "ERR_USAGE",
      "message body starts like JSON but does not parse: fix it, or pass --text to send it as a string",
    );
  }
  return normalizeBody(text);
}

export async function readBody(arg: string | undefined, o: BodyOptions): Promise<string> {
  return bodyJson(await bodyText(arg, o), o);
}
