/**
 * Sign In With Farcaster through an auth relay (docs/protocol.md#operator-binding, README.md#commands `atlas id auth-farcaster`).
 *
 * The relay protocol is spoken by the ecosystem's own client, @farcaster/auth-client: we create a
 * channel whose SIWE parameters bind this node (Request ID = full node ID, Expiration Time = the
 * binding's lifetime), show the approval URL to the operator, poll the channel until the
 * operator's Farcaster app has signed, and check the signed message offline before accepting it.
 *
 * @farcaster/auth-client pulls in viem: this module is heavy and is only ever imported lazily
 * (from inside a command action), and it imports the client itself lazily as well.
 */
import { AUTH_FIRST_REQUEST_MIN_MS } from "../config/durations.ts";
import { AtlasError, Exit } from "../errors.ts";
import type { OperatorInfo } from "../wire/messages.ts";
import { within } from "../util/time.ts";

export const DEFAULT_AUTH_RELAY = "https://relay.farcaster.xyz";
export const DEFAULT_SIWE_DOMAIN = "atlas.local";
export const DEFAULT_SIWE_URI = "https://atlas.local/operator-auth";
/** The relay keeps a channel open for about this long; a longer wait cannot succeed. */
export const APPROVAL_WINDOW_SECS = 600;

export interface AuthFarcasterOptions {
  /** This node's full ID: becomes the message's Request ID. */
  nodeId: string;
  relayUrl?: string;
  domain?: string;
  siweUri?: string;
  /** How long to wait for the operator's approval. */
  timeoutSecs?: number;
  pollIntervalMs?: number;
  /** The binding's lifetime (its Expiration Time), separate from the approval window. */
  validDays?: number;
  /** Called once the channel exists, before waiting: show `url` to the operator. */
  onChannel?: (channel: { url: string; nonce: string }) => void | Promise<void>;
  /** Called after every status poll that is still pending. */
  onPending?: (info: { polls: number; remainingMs: number }) => void;
  /** Wall clock in ms (tests). */
  now?: () => number;
}

export interface AuthFarcasterResult {
  operator: OperatorInfo;
  approvalUrl: string;
  /** Unix seconds: the binding's Expiration Time (null: the signed message has none). */
  expiresAt: number | null;
}

/** Validate and normalise an auth relay base URL (no trailing slash: the client appends `/v1/…`). */
export function normalizeRelayUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new AtlasError("ERR_USAGE", `invalid --auth-relay ${JSON.stringify(url)}: expected an http(s) URL`);
  }
  if (u.protocol !== "https:" && u.protocol !== "http:") {
    throw new AtlasError("ERR_USAGE", `invalid --auth-relay ${JSON.stringify(url)}: expected an http(s) URL`);
  }
  if (u.search || u.hash) {
    throw new AtlasError("ERR_USAGE", `invalid --auth-relay ${JSON.stringify(url)}: no query or fragment allowed`);
  }
  return u.toString().replace(/\/+$/, "");
}

/** The most specific message in an error's cause chain ("connect ECONNREFUSED 127.0.0.1:9"). */
function rootCause(e: unknown): { message: string; isJson: boolean } {
  let cur: unknown = e;
  let message = "";
  let isJson = false;
  for (let depth = 0; cur && depth < 8; depth++) {
    if (cur instanceof SyntaxError) isJson = true;
    const m = (cur as { message?: unknown }).message;
    if (typeof m === "string" && m.trim() !== "") message = m;
    const code = (cur as { code?: unknown }).code;
    if (typeof code === "string" && !message.includes(code)) message = `${message} (${code})`;
    const next = (cur as { cause?: unknown }).cause;
    if (next === cur) break;
    cur = next;
  }
  if (cur instanceof AggregateError && cur.errors.length) message = rootCause(cur.errors[0]).message;
  return { message: message.replace(/\s+/g, " ").trim() || "unknown error", isJson };
}

/** An AtlasError for a failed request to the relay (no HTTP answer, or a non-JSON one). */
function requestError(relay: string, e: unknown): AtlasError {
  const { message, isJson } = rootCause(e);
  if (isJson) {
    return new AtlasError(
      "ERR_IO",
      `auth relay ${relay} answered with something other than JSON: is it an auth relay?`,
      { cause: e },
    );
  }
  return new AtlasError("ERR_UNREACHABLE", `auth relay ${relay} unreachable: ${message}`, { cause: e });
}

/** An AtlasError for an HTTP error status from the relay, creating the channel or polling it. */
function statusError(relay: string, op: "create" | "status", status: number, data: unknown): AtlasError {
  const detail = typeof (data as { error?: unknown })?.error === "string"
    ? `: ${String((data as { error: string }).error).slice(0, 200)}`
    : "";
  const what = op === "create" ? "creating the sign-in channel" : "the sign-in status request";
  if (status >= 500) {
    return new AtlasError(
      "ERR_UNREACHABLE",
      `auth relay ${relay} unreachable: ${what} failed with HTTP ${status}${detail}`,
    );
  }
  return new AtlasError("ERR_REJECTED", `auth relay ${relay} refused ${what}: HTTP ${status}${detail}`);
}

/** A positive finite number, or a usage error naming the flag. */
function positive(name: string, v: number, integer = false): number {
  if (!Number.isFinite(v) || v <= 0 || (integer && !Number.isInteger(v))) {
    throw new AtlasError("ERR_USAGE", `invalid ${name} ${v}: expected a positive ${integer ? "integer" : "number"}`);
  }
  return v;
}

/** We refuse what the relay sent: an error (exit 1), not a rejection by a peer (exit 4). */
const notVerified = (message: string) => new AtlasError("ERR_NOT_VERIFIED", message, { exit: Exit.ERROR });

/**
 * A random alphanumeric nonce (as SIWE and the relay require), 24 characters ≈ 142 bits. Shorter
 * than the client's generateNonce (96 characters), which keeps the approval URL's QR code small.
 */
export function makeNonce(length = 24): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  let out = "";
  while (out.length < length) {
    for (const b of crypto.getRandomValues(new Uint8Array(length * 2))) {
      if (b < 248 && out.length < length) out += alphabet[b % 62]; // 248 = 4 × 62: no modulo bias
    }
  }
  return out;
}

/** Seconds-precision ISO 8601 (SIWE readers differ on fractional seconds; whole seconds are safe). */
const isoSecs = (ms: number) => new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(/\.000Z$/, "Z");

/**
 * Run Sign In With Farcaster against the auth relay and return the verified binding.
 *
 * Errors: relay unreachable → ERR_UNREACHABLE (exit 3); no approval in time → ERR_TIMEOUT
 * (exit 5); relay refused the channel → ERR_REJECTED (exit 4); the signed answer does not bind
 * this node → ERR_NOT_VERIFIED (exit 1).
 */
export async function authFarcaster(o: AuthFarcasterOptions): Promise<AuthFarcasterResult> {
  // @farcaster/auth-client calls the global fetch without an AbortSignal, so a request to a relay
  // that accepts the connection but never answers would keep the process alive long after we gave
  // up on it. For the duration of the sign-in, requests get a signal that is aborted at the end.
  const abort = new AbortController();
  const realFetch = globalThis.fetch;
  globalThis.fetch = ((input: Parameters<typeof fetch>[0], init?: RequestInit) =>
    realFetch(input, {
      ...init,
      signal: init?.signal ? AbortSignal.any([init.signal, abort.signal]) : abort.signal,
    })) as typeof fetch;
  try {
    return await signIn(o);
  } finally {
    globalThis.fetch = realFetch;
    abort.abort();
  }
}

async function signIn(o: AuthFarcasterOptions): Promise<AuthFarcasterResult> {
  const now = o.now ?? Date.now;
  const relay = normalizeRelayUrl(o.relayUrl ?? DEFAULT_AUTH_RELAY);
  const domain = o.domain ?? DEFAULT_SIWE_DOMAIN;
  const siweUri = o.siweUri ?? DEFAULT_SIWE_URI;
  const timeoutSecs = positive("--timeout-secs", o.timeoutSecs ?? 180);
  const pollIntervalMs = positive("--poll-interval-ms", o.pollIntervalMs ?? 1000);
  const validDays = positive("--valid-days", o.validDays ?? 365);
  if (validDays > 36500) throw new AtlasError("ERR_USAGE", `invalid --valid-days ${validDays}: at most 36500`);
  if (!/^[A-Za-z0-9.-]+(:[0-9]+)?$/.test(domain)) {
    throw new AtlasError(
      "ERR_USAGE",
      `invalid --domain ${JSON.stringify(domain)}: expected a host name (and optional port)`,
    );
  }
  try {
    new URL(siweUri);
  } catch {
    throw new AtlasError("ERR_USAGE", `invalid --siwe-uri ${JSON.stringify(siweUri)}: expected a URI`);
  }

  const { createAppClient, viemConnector } = await import("@farcaster/auth-client");
  // The connector is only used for on-chain checks we do not make; an explicit RPC URL (OP
  // mainnet's public one, viem's default) keeps it from warning on stderr.
  const appClient = createAppClient({ relay, ethereum: viemConnector({ rpcUrl: "https://mainnet.optimism.io" }) });

  const started = now();
  const deadline = started + timeoutSecs * 1000;
  // A request that hangs is bounded by the overall deadline (the first one by at least 10 s).
  const requestBudget = () => Math.max(deadline - now(), 0);
  const createBudget = Math.max(requestBudget(), AUTH_FIRST_REQUEST_MIN_MS);
  const hung = () =>
    new AtlasError(
      "ERR_UNREACHABLE",
      `auth relay ${relay} unreachable: no answer within ${Math.round(createBudget / 1000)} s`,
    );

  const nonce = makeNonce();
  const expirationMs = started + validDays * 86_400_000;
  const created = await within(
    appClient.createChannel({
      siweUri,
      domain,
      nonce,
      requestId: o.nodeId,
      notBefore: isoSecs(started),
      expirationTime: isoSecs(expirationMs),
      // The binding must be signed by the custody address itself (docs/protocol.md#operator-binding), not an auth address.
      acceptAuthAddress: false,
    }),
    createBudget,
    hung,
  );
  if (!created) throw hung();
  if (created.isError) throw requestError(relay, created.error);
  if (!created.response.ok) throw statusError(relay, "create", created.response.status, created.data);
  const { channelToken, url } = created.data;
  if (typeof channelToken !== "string" || channelToken === "" || typeof url !== "string" || url === "") {
    throw new AtlasError(
      "ERR_IO",
      `auth relay ${relay} answered without a channel token and approval URL: is it an auth relay?`,
    );
  }
  const channelNonce = typeof created.data.nonce === "string" && created.data.nonce !== "" ? created.data.nonce : nonce;
  await o.onChannel?.({ url, nonce: channelNonce });

  const timedOut = () => new AtlasError("ERR_TIMEOUT", `no approval within ${timeoutSecs} s`);
  let polls = 0;
  let failures = 0;
  let completed: Awaited<ReturnType<typeof appClient.status>> & { isError: false };
  for (;;) {
    if (now() >= deadline) throw timedOut();
    const r = await within(appClient.status({ channelToken }), requestBudget(), timedOut);
    if (!r) throw timedOut();
    polls++;
    if (r.isError) {
      // A relay that goes away mid-wait: tolerate a blip, not an outage.
      if (++failures >= 3) throw requestError(relay, r.error);
    } else {
      const { response, data } = r;
      if (response.status >= 500) {
        if (++failures >= 3) throw statusError(relay, "status", response.status, data);
      } else if (!response.ok) {
        throw statusError(relay, "status", response.status, data);
      } else if (data?.state === "completed") {
        completed = r;
        break;
      } else failures = 0;
    }
    const remainingMs = deadline - now();
    o.onPending?.({ polls, remainingMs: Math.max(remainingMs, 0) });
    if (remainingMs <= 0) throw timedOut();
    await new Promise<void>((resolve) => setTimeout(resolve, Math.min(pollIntervalMs, remainingMs)));
  }

  const d = completed.data;
  if (d.authMethod === "authAddress") {
    throw notVerified(
      "the approval was signed by an auth address, not the account's custody address: a binding needs the custody signature",
    );
  }
  const bad = (what: string) =>
    new AtlasError("ERR_IO", `auth relay ${relay} sent a completed sign-in without ${what}`);
  if (typeof d.message !== "string" || d.message === "") throw bad("the signed message");
  if (typeof d.signature !== "string" || !d.signature) throw bad("a signature");
  if (typeof d.fid !== "number" || !Number.isSafeInteger(d.fid) || d.fid <= 0) throw bad("a valid fid");
  if (typeof d.custody !== "string" || !d.custody) throw bad("the custody address");
  if (typeof d.username !== "string" || d.username === "") {
    throw notVerified(`Farcaster account fid ${d.fid} has no username; set one in your Farcaster app and try again`);
  }

  const operator: OperatorInfo = {
    fid: d.fid,
    username: d.username,
    custody_address: d.custody,
    message: d.message,
    signature: d.signature,
  };
  const expiresAt = await checkBinding(operator, o.nodeId, Math.floor(now() / 1000), channelNonce);
  return { operator, approvalUrl: url, expiresAt };
}

/**
 * Verify a binding received from a relay before storing it: the offline checks of docs/protocol.md#operator-binding (Request
 * ID = this node, fid named, validity window, signature by the custody address), plus that it
 * answers our channel (same nonce), so a relay cannot replay an older approval. Returns the expiry.
 */
async function checkBinding(op: OperatorInfo, nodeId: string, nowSecs: number, nonce: string): Promise<number | null> {
  const { verifyBindingOffline } = await import("./verify.ts");
  const { tryParseBinding } = await import("./siwe.ts");
  const v = verifyBindingOffline(op, nodeId, nowSecs);
  if (!v.ok) throw notVerified(`the auth relay returned a binding that does not verify: ${v.reason}`);
  const parsed = tryParseBinding(op.message);
  if (parsed.ok && parsed.value.nonce !== nonce) {
    throw notVerified("the auth relay returned a binding that does not verify: its nonce is not this sign-in's");
  }
  return v.expiresAt;
}
