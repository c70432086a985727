/**
 * EIP-191 `personal_sign` signatures (docs/protocol.md#operator-binding): the custody address of a Farcaster account signs
 * the binding's SIWE text. Recovery uses secp256k1 and keccak-256 from @noble (the stack the design
 * names); nothing here depends on viem, so this module stays light.
 */
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { keccak_256 } from "@noble/hashes/sha3.js";
import { bytesToHex, concatBytes, hexToBytes, utf8ToBytes } from "@noble/hashes/utils.js";
import { AtlasError } from "../errors.ts";

const ADDRESS_RE = /^0x[0-9a-fA-F]{40}$/;
const SIG_RE = /^(0x)?[0-9a-fA-F]{130}$/;

/** True for `0x` + 40 hex digits, whatever the letter case (checksum not enforced). */
export function isAddress(addr: unknown): addr is string {
  return typeof addr === "string" && ADDRESS_RE.test(addr);
}

/** EIP-55 mixed-case checksum form of an address. Throws AtlasError(ERR_USAGE) if it is not one. */
export function checksumAddress(addr: string): string {
  if (!isAddress(addr)) throw new AtlasError("ERR_USAGE", `not an Ethereum address: ${String(addr).slice(0, 64)}`);
  const lower = addr.slice(2).toLowerCase();
  const hash = bytesToHex(keccak_256(utf8ToBytes(lower)));
  let out = "0x";
  for (let i = 0; i < 40; i++) {
    const c = lower[i]!;
    out += parseInt(hash[i]!, 16) >= 8 ? c.toUpperCase() : c;
  }
  return out;
}

/** keccak-256("\x19Ethereum Signed Message:\n" + byte length + message): the digest personal_sign signs. */
export function personalMessageHash(message: string): Uint8Array {
  const body = utf8ToBytes(message);
  const prefix = utf8ToBytes(`\x19Ethereum Signed Message:\n${body.length}`);
  return keccak_256(concatBytes(prefix, body));
}

/** Ethereum address (checksummed) of an uncompressed or compressed secp256k1 public key. */
export function addressFromPublicKey(pub: Uint8Array): string {
  const uncompressed = pub.length === 65 ? pub : secp256k1.Point.fromBytes(pub).toBytes(false);
  return checksumAddress("0x" + bytesToHex(keccak_256(uncompressed.subarray(1)).subarray(12)));
}

/**
 * The address that made an EIP-191 personal_sign signature of `message`. The signature is 65
 * bytes of hex (`0x` optional): r (32) ‖ s (32) ‖ v, with v = 27/28 (0/1 also accepted).
 * Returns the EIP-55 checksummed address; throws AtlasError(ERR_USAGE) for a malformed signature
 * or one from which no public key can be recovered.
 */
export function recoverPersonalSignAddress(message: string, signatureHex: string): string {
  if (typeof signatureHex !== "string" || !SIG_RE.test(signatureHex)) {
    throw new AtlasError("ERR_USAGE", "malformed signature: expected 65 bytes of hex (r, s, v)");
  }
  const bytes = hexToBytes(signatureHex.startsWith("0x") ? signatureHex.slice(2) : signatureHex);
  const v = bytes[64]!;
  const recovery = v === 27 || v === 28 ? v - 27 : v === 0 || v === 1 ? v : -1;
  if (recovery < 0) {
    throw new AtlasError("ERR_USAGE", `malformed signature: recovery byte v must be 27 or 28, got ${v}`);
  }
  let pub: Uint8Array;
  try {
    const sig = secp256k1.Signature.fromBytes(bytes.subarray(0, 64), "compact").addRecoveryBit(recovery);
    pub = sig.recoverPublicKey(personalMessageHash(message)).toBytes(false);
  } catch (e) {
    throw new AtlasError("ERR_USAGE", `malformed signature: ${(e as Error).message}`, { cause: e });
  }
  return addressFromPublicKey(pub);
}
