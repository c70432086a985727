/**
 * Verifying a peer's operator binding (docs/protocol.md#operator-binding, trust level `verified` in §9).
 *
 * Step 1, offline (`verifyBindingOffline`): the SIWE message parses, its Request ID is the
 * sender's node ID, its resources name the claimed fid, it is inside its validity window, and the
 * EIP-191 signature recovers to the custody address, which is also the address the message names.
 * Step 2, ownership (`verifyOperator` with `farcaster.verify = "hub"`): a Farcaster hub confirms
 * the custody address owns the fid, and supplies the fid's current username. With
 * `farcaster.verify = "signature"` step 1 suffices and the username is taken as claimed.
 *
 * Fails closed: anything short of a full pass is `unconfirmed` with a reason a user can act on.
 * Neither function throws.
 *
 * Imports viem (through siwe.ts): load this module lazily from the CLI.
 */
import type { Config } from "../config/defaults.ts";
import { unixNow } from "../util/time.ts";
import type { OperatorInfo } from "../wire/messages.ts";
import { checksumAddress, isAddress, recoverPersonalSignAddress } from "./eip191.ts";
import { fidResource, fidsInResources, tryParseBinding } from "./siwe.ts";

export type OfflineResult = { ok: true; fid: number; expiresAt: number | null } | { ok: false; reason: string };

/** What verifyOperator needs from a Farcaster hub (HttpHubClient in hub.ts; fakes in tests). */
export interface HubClient {
  /** Whether `address` is the fid's current custody address. Throws when the hub cannot say. */
  custodyOwnsFid(fid: number, address: string): Promise<boolean>;
  /** The fid's current username, null when it has none. Throws when the hub cannot say. */
  username(fid: number): Promise<string | null>;
}

export type OperatorVerdict =
  | { status: "verified"; fid: number; username: string }
  | { status: "unconfirmed"; fid?: number; username?: string; reason: string };

/** Longest username accepted in a binding (fnames are ≤ 16 characters, ENS names longer). */
export const MAX_USERNAME_CHARS = 256;

/** C0 control characters and DEL: never part of a plausible username. */
// deno-lint-ignore no-control-regex -- matching control characters is the point
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

const quote = (s: string, max = 80): string => (s.length > max ? s.slice(0, max) + "…" : s);

/** Problems with the binding's own fields (types, fid, username, address), or null. */
function fieldProblem(op: OperatorInfo): string | null {
  if (typeof op !== "object" || op === null) return "operator binding is not an object";
  if (!Number.isSafeInteger(op.fid) || op.fid <= 0) {
    return `fid must be a positive integer, got ${quote(String(op.fid))}`;
  }
  if (typeof op.username !== "string") return "username is not a string";
  if (op.username.includes("@")) return `username must be given without '@' (${quote(op.username)})`;
  if (op.username.length > MAX_USERNAME_CHARS) return `username longer than ${MAX_USERNAME_CHARS} characters`;
  if (CONTROL_CHARS.test(op.username)) return "username contains control characters";
  if (!isAddress(op.custody_address)) {
    return `custody address is not an Ethereum address (${quote(String(op.custody_address))})`;
  }
  if (typeof op.message !== "string") return "message is not a string";
  if (typeof op.signature !== "string") return "signature is not a string";
  return null;
}

/** Step 1 of docs/protocol.md#operator-binding: everything that can be checked without asking anyone. */
export function verifyBindingOffline(op: OperatorInfo, nodeId: string, nowSecs: number): OfflineResult {
  try {
    const problem = fieldProblem(op);
    if (problem) return { ok: false, reason: problem };

    const parsed = tryParseBinding(op.message);
    if (!parsed.ok) return { ok: false, reason: `malformed SIWE message: ${parsed.reason}` };
    const m = parsed.value;

    if (m.requestId !== nodeId) {
      return {
        ok: false,
        reason: m.requestId === undefined
          ? "binding is for another node (no request ID)"
          : `binding is for another node (request ID ${quote(m.requestId)})`,
      };
    }

    if (!m.resources.includes(fidResource(op.fid))) return { ok: false, reason: `message does not name fid ${op.fid}` };
    const fids = [...new Set(fidsInResources(m.resources))];
    if (fids.length > 1) return { ok: false, reason: `message names more than one fid (${fids.join(", ")})` };

    if (m.notBefore && nowSecs < m.notBefore.getTime() / 1000) {
      return { ok: false, reason: `binding not valid before ${m.notBefore.toISOString()}` };
    }
    if (m.expirationTime && nowSecs >= m.expirationTime.getTime() / 1000) {
      return { ok: false, reason: `binding expired at ${m.expirationTime.toISOString()}` };
    }

    const custody = checksumAddress(op.custody_address);
    let signer: string;
    try {
      signer = recoverPersonalSignAddress(op.message, op.signature);
    } catch (e) {
      return { ok: false, reason: (e as Error).message };
    }
    if (signer.toLowerCase() !== custody.toLowerCase()) {
      return { ok: false, reason: `signature was not made by the custody address ${custody}` };
    }
    if (m.address.toLowerCase() !== custody.toLowerCase()) {
      return { ok: false, reason: `message names address ${quote(m.address)}, not the custody address ${custody}` };
    }

    return {
      ok: true,
      fid: op.fid,
      expiresAt: m.expirationTime ? Math.floor(m.expirationTime.getTime() / 1000) : null,
    };
  } catch (e) {
    return { ok: false, reason: `cannot verify binding: ${(e as Error).message}` };
  }
}

/** The fid and username a binding claims, when they are of the right shape (for display). */
function claimed(op: OperatorInfo): { fid?: number; username?: string } {
  const out: { fid?: number; username?: string } = {};
  if (typeof op !== "object" || op === null) return out;
  if (Number.isSafeInteger(op.fid) && op.fid > 0) out.fid = op.fid;
  if (
    typeof op.username === "string" && op.username.length <= MAX_USERNAME_CHARS &&
    !CONTROL_CHARS.test(op.username)
  ) {
    out.username = op.username;
  }
  return out;
}

const errorText = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/**
 * Both steps of docs/protocol.md#operator-binding under the configured mode. `verified` only when everything checks out;
 * otherwise `unconfirmed` with the claimed fid/username (if well-formed) and the reason.
 * A hub that cannot be asked, errs, or disagrees leaves the binding unconfirmed (fail closed).
 * With "hub" the username is the hub's current one (empty when the fid has none), not the claim.
 */
export async function verifyOperator(
  op: OperatorInfo,
  nodeId: string,
  cfg: Config,
  hub: HubClient | null,
  nowSecs: number = unixNow(),
): Promise<OperatorVerdict> {
  const unconfirmed = (reason: string): OperatorVerdict => ({ status: "unconfirmed", ...claimed(op), reason });
  try {
    const offline = verifyBindingOffline(op, nodeId, nowSecs);
    if (!offline.ok) return unconfirmed(offline.reason);
    const fid = offline.fid;

    const mode = cfg.farcaster.verify;
    if (mode === "signature") return { status: "verified", fid, username: op.username };
    if (mode !== "hub") return unconfirmed(`unknown farcaster.verify mode ${JSON.stringify(mode)}`);
    if (!hub) return unconfirmed('no Farcaster hub to ask (farcaster.verify = "hub")');

    const custody = checksumAddress(op.custody_address);
    let owns: boolean;
    try {
      owns = await hub.custodyOwnsFid(fid, custody);
    } catch (e) {
      return unconfirmed(`hub unreachable: ${errorText(e)}`);
    }
    if (owns !== true) return unconfirmed(`hub says fid ${fid} is not owned by ${custody}`);

    let username: string | null;
    try {
      username = await hub.username(fid);
    } catch (e) {
      return unconfirmed(`hub unreachable: ${errorText(e)}`);
    }
    return { status: "verified", fid, username: typeof username === "string" ? username : "" };
  } catch (e) {
    return unconfirmed(`cannot verify operator: ${errorText(e)}`);
  }
}
