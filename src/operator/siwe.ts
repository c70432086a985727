/**
 * The binding message (docs/protocol.md#operator-binding): a Sign-In-With-Farcaster text, i.e. EIP-4361 (SIWE). Parsing
 * and formatting are viem's (`parseSiweMessage`, `createSiweMessage`); this module only adds the
 * checks viem's lenient parser leaves out (required fields present, dates valid, no stray or
 * repeated lines) and the Farcaster conventions (statement, chain ID, fid resource).
 *
 * viem is a heavy dependency: reach this module only through code the CLI loads lazily.
 */
import { createSiweMessage, parseSiweMessage } from "viem/siwe";
import { AtlasError } from "../errors.ts";

/** What @farcaster/auth-client puts in every Sign In With Farcaster message. */
export const SIWF_STATEMENT = "Farcaster Auth";
/** SIWF messages name OP mainnet, where Farcaster's registry contracts live. */
export const SIWF_CHAIN_ID = 10;
/** A binding is a few hundred characters; anything far longer is refused before parsing. */
export const MAX_BINDING_MESSAGE_CHARS = 8192;

export interface ParsedSiwe {
  scheme?: string;
  domain: string;
  /** As written in the message (SIWE requires EIP-55 form; not enforced here). */
  address: string;
  statement?: string;
  uri: string;
  version: "1";
  chainId: number;
  nonce: string;
  issuedAt: Date;
  expirationTime?: Date;
  notBefore?: Date;
  requestId?: string;
  resources: string[];
}

export type ParseBindingResult = { ok: true; value: ParsedSiwe } | { ok: false; reason: string };

/** The resource URI that names a Farcaster account in a SIWF message. */
export function fidResource(fid: number): string {
  return `farcaster://fid/${fid}`;
}

/** The fids named by `farcaster://fid/<n>` resources, in order (malformed ones are skipped). */
export function fidsInResources(resources: readonly string[]): number[] {
  const out: number[] = [];
  for (const r of resources) {
    const m = /^farcaster:\/\/fid\/([1-9][0-9]{0,15})$/.exec(r);
    if (m) out.push(Number(m[1]));
  }
  return out;
}

// Lines of the EIP-4361 suffix (after the statement), in their required order.
const SUFFIX_LABELS = [
  "URI: ",
  "Version: ",
  "Chain ID: ",
  "Nonce: ",
  "Issued At: ",
  "Expiration Time: ",
  "Not Before: ",
  "Request ID: ",
  "Resources:",
] as const;

const isValidDate = (d: unknown): d is Date => d instanceof Date && !Number.isNaN(d.getTime());

/**
 * Parse a binding message without throwing. `reason` names what is wrong, precisely enough to show
 * to a user (without the "malformed SIWE message: " prefix, which callers add).
 */
export function tryParseBinding(message: unknown): ParseBindingResult {
  const fail = (reason: string): ParseBindingResult => ({ ok: false, reason });
  if (typeof message !== "string") return fail("not a string");
  if (message.length === 0) return fail("empty");
  if (message.length > MAX_BINDING_MESSAGE_CHARS) return fail(`longer than ${MAX_BINDING_MESSAGE_CHARS} characters`);
  if (message.includes("\r")) return fail("contains a carriage return (lines must end with \\n only)");

  let p: ReturnType<typeof parseSiweMessage>;
  try {
    p = parseSiweMessage(message);
  } catch (e) {
    return fail((e as Error).message);
  }
  if (!p.domain || !p.address) {
    return fail('no "<domain> wants you to sign in with your Ethereum account:" line followed by an address');
  }
  if (
    p.uri === undefined || p.version === undefined || p.chainId === undefined || p.nonce === undefined ||
    p.issuedAt === undefined
  ) {
    return fail(
      "missing or malformed URI, Version, Chain ID, Nonce or Issued At line (the nonce must be alphanumeric)",
    );
  }
  if (p.version !== "1") return fail(`unsupported Version ${JSON.stringify(p.version)} (expected 1)`);
  if (!Number.isSafeInteger(p.chainId)) return fail("Chain ID is not an integer");
  if (!isValidDate(p.issuedAt)) return fail("Issued At is not an RFC 3339 date-time");
  if (p.expirationTime !== undefined && !isValidDate(p.expirationTime)) {
    return fail("Expiration Time is not an RFC 3339 date-time");
  }
  if (p.notBefore !== undefined && !isValidDate(p.notBefore)) return fail("Not Before is not an RFC 3339 date-time");

  // viem's parser is a pair of unanchored regexes: a line it does not recognise, a repeated field
  // or fields out of order are silently ignored. A signed message must say exactly what we read.
  const lines = message.split("\n");
  while (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  // Header: "<domain> wants you…", address, blank, [statement, blank,] blank-or-URI (EIP-4361 ABNF).
  const start = p.statement === undefined ? 4 : 5;
  const headerOk = lines[2] === "" && lines[start - 1] === "" &&
    (p.statement === undefined || lines[3] === p.statement);
  if (!headerOk || !lines[start]?.startsWith("URI: ")) {
    return fail("the statement must be a single line between blank lines, followed by the URI line");
  }
  const seen = new Set<string>();
  let lastLabel = -1;
  let inResources = false;
  for (const line of lines.slice(start)) {
    if (inResources && line.startsWith("- ")) continue;
    const i = SUFFIX_LABELS.findIndex((l) => line.startsWith(l));
    if (i < 0) return fail(`unexpected line ${JSON.stringify(line.slice(0, 60))}`);
    const label = SUFFIX_LABELS[i]!.replace(/:\s*$/, "");
    if (seen.has(label)) return fail(`${label} appears twice`);
    if (i < lastLabel) return fail(`${label} is out of order`);
    seen.add(label);
    lastLabel = i;
    inResources = label === "Resources";
  }
  if (seen.has("Expiration Time") && p.expirationTime === undefined) return fail("Expiration Time line not understood");
  if (seen.has("Not Before") && p.notBefore === undefined) return fail("Not Before line not understood");
  if (seen.has("Request ID") && p.requestId === undefined) return fail("Request ID line not understood");
  if (seen.has("Resources") && p.resources === undefined) return fail("Resources section not understood");

  const value: ParsedSiwe = {
    domain: p.domain,
    address: p.address,
    uri: p.uri,
    version: "1",
    chainId: p.chainId,
    nonce: p.nonce,
    issuedAt: p.issuedAt,
    resources: p.resources ?? [],
  };
  if (p.scheme !== undefined) value.scheme = p.scheme;
  if (p.statement !== undefined) value.statement = p.statement;
  if (p.expirationTime !== undefined) value.expirationTime = p.expirationTime;
  if (p.notBefore !== undefined) value.notBefore = p.notBefore;
  if (p.requestId !== undefined) value.requestId = p.requestId;
  return { ok: true, value };
}

/** Parse a binding message; throws AtlasError(ERR_USAGE, "malformed SIWE message: <reason>"). */
export function parseBinding(message: string): ParsedSiwe {
  const r = tryParseBinding(message);
  if (!r.ok) throw new AtlasError("ERR_USAGE", `malformed SIWE message: ${r.reason}`);
  return r.value;
}

export interface BindingMessageInput {
  /** RFC 3986 authority asking for the signature (the app / auth relay domain). */
  domain: string;
  uri: string;
  /** The custody address that will sign. */
  address: string;
  /** This node's full ID; becomes the Request ID. */
  nodeId: string;
  fid: number;
  /** At least 8 alphanumeric characters. */
  nonce: string;
  issuedAt: Date;
  /** The binding's lifetime (docs/protocol.md#operator-binding: 365 days by default). */
  expirationTime: Date;
  notBefore?: Date;
  /** Defaults to "Farcaster Auth", as SIWF clients write it. */
  statement?: string;
}

/**
 * The EIP-4361 text a custody address signs to bind `nodeId` to `fid`, laid out as
 * @farcaster/auth-client produces it: statement "Farcaster Auth", Chain ID 10, Request ID = node
 * ID, resources = [farcaster://fid/<fid>]. Throws AtlasError(ERR_USAGE) naming a bad field.
 */
export function buildBindingMessage(o: BindingMessageInput): string {
  if (!Number.isSafeInteger(o.fid) || o.fid <= 0) {
    throw new AtlasError("ERR_USAGE", `fid must be a positive integer, got ${o.fid}`);
  }
  if (typeof o.nodeId !== "string" || !/^[\x21-\x7e]+$/.test(o.nodeId)) {
    throw new AtlasError("ERR_USAGE", "node ID must be non-empty printable ASCII without spaces");
  }
  for (
    const [k, d] of [["issuedAt", o.issuedAt], ["expirationTime", o.expirationTime], [
      "notBefore",
      o.notBefore,
    ]] as const
  ) {
    if (d !== undefined && !isValidDate(d)) throw new AtlasError("ERR_USAGE", `${k} is not a valid date`);
  }
  try {
    return createSiweMessage({
      domain: o.domain,
      address: o.address as `0x${string}`,
      statement: o.statement ?? SIWF_STATEMENT,
      uri: o.uri,
      version: "1",
      chainId: SIWF_CHAIN_ID,
      nonce: o.nonce,
      issuedAt: o.issuedAt,
      expirationTime: o.expirationTime,
      ...(o.notBefore ? { notBefore: o.notBefore } : {}),
      requestId: o.nodeId,
      resources: [fidResource(o.fid)],
    });
  } catch (e) {
    const err = e as { shortMessage?: string; metaMessages?: string[]; message?: string };
    const detail = [
      err.shortMessage ?? err.message ?? String(e),
      ...(err.metaMessages ?? []).filter((m) => m.trim() !== ""),
    ]
      .join(" ")
      .replace(/\s+/g, " ");
    throw new AtlasError("ERR_USAGE", `cannot build binding message: ${detail}`, { cause: e });
  }
}
