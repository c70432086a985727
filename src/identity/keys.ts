/**
 * ed25519 key material and its standard encodings. The private key file is PKCS#8 PEM so that
 * `openssl pkey` and BoringSSL read it; we only ever produce (and accept) the canonical 48-byte
 * RFC 8410 form that `openssl genpkey -algorithm ed25519` also writes.
 */
import { ed25519 } from "@noble/curves/ed25519.js";
import {
  createPrivateKey,
  createPublicKey,
  type KeyObject,
  sign as cryptoSign,
  verify as cryptoVerify,
} from "node:crypto";
import { AtlasError } from "../errors.ts";

/** PKCS#8 v1 PrivateKeyInfo for ed25519 up to the 32-byte seed (RFC 8410 §7). */
const PKCS8_PREFIX = hex("302e020100300506032b657004220420");
/** SubjectPublicKeyInfo for ed25519 up to the 32-byte key (RFC 8410 §4). */
export const SPKI_PREFIX = hex("302a300506032b6570032100");

function hex(s: string): Uint8Array {
  return Uint8Array.from(s.match(/../g)!, (b) => parseInt(b, 16));
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function startsWith(buf: Uint8Array, prefix: Uint8Array): boolean {
  if (buf.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (buf[i] !== prefix[i]) return false;
  return true;
}

function checkSeed(seed: Uint8Array): void {
  if (!(seed instanceof Uint8Array) || seed.length !== 32) {
    throw new AtlasError("ERR_INVALID_IDENTITY", "ed25519 seed must be 32 bytes");
  }
}

export function generateSeed(): Uint8Array {
  // Web Crypto CSPRNG: available in Node >= 19 and Deno without imports.
  return crypto.getRandomValues(new Uint8Array(32));
}

export function publicKeyFromSeed(seed: Uint8Array): Uint8Array {
  checkSeed(seed);
  return ed25519.getPublicKey(seed);
}

/**
 * Signing and verification sit on every handshake's critical path (2 signatures and 4
 * verifications per connect). @noble/curves takes 0.6 ms to sign and 1.25 ms to verify here;
 * the runtime's own ed25519 (node:crypto, BoringSSL/OpenSSL underneath) 0.04 / 0.1–0.2 ms. Use
 * it when the runtime has it and it agrees with noble on a known vector; noble otherwise.
 */
const native = (() => {
  try {
    const seed = new Uint8Array(32).fill(7);
    const msg = new TextEncoder().encode("atlas-ed25519-probe");
    const key = createPrivateKey({ key: Buffer.from(concat(PKCS8_PREFIX, seed)), format: "der", type: "pkcs8" });
    const sig = new Uint8Array(cryptoSign(null, msg, key));
    const want = ed25519.sign(msg, seed);
    return sig.length === 64 && sig.every((b, i) => b === want[i]);
  } catch {
    return false;
  }
})();

/**
 * node:crypto wants a KeyObject, and making one costs 0.15–0.5 ms — more than the signature
 * itself. Keep the few we reuse: this node's own key (a test or benchmark process may hold
 * several nodes) and recently seen peers' keys (they reconnect), least recently used dropped.
 */
class KeyCache {
  private map = new Map<string, KeyObject>();
  constructor(private readonly max: number, private readonly make: (raw: Uint8Array) => KeyObject) {}
  get(raw: Uint8Array): KeyObject {
    const k = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString("latin1");
    let v = this.map.get(k);
    if (v) this.map.delete(k);
    else {
      v = this.make(raw);
      if (this.map.size >= this.max) this.map.delete(this.map.keys().next().value!);
    }
    this.map.set(k, v);
    return v;
  }
}

const privateKeys = new KeyCache(
  8,
  (seed) => createPrivateKey({ key: Buffer.from(concat(PKCS8_PREFIX, seed)), format: "der", type: "pkcs8" }),
);
const publicKeys = new KeyCache(
  256,
  (pk) => createPublicKey({ key: Buffer.from(concat(SPKI_PREFIX, pk)), format: "der", type: "spki" }),
);

function privateKeyObject(seed: Uint8Array): KeyObject {
  return privateKeys.get(seed);
}

export function signEd25519(seed: Uint8Array, msg: Uint8Array): Uint8Array {
  checkSeed(seed);
  if (native) return new Uint8Array(cryptoSign(null, msg, privateKeyObject(seed)));
  return ed25519.sign(msg, seed);
}

/** Strict RFC 8032 verification (no ZIP-215 leniency), matching what BoringSSL accepts. */
export function verifyEd25519(pk: Uint8Array, msg: Uint8Array, sig: Uint8Array): boolean {
  try {
    if (!(pk instanceof Uint8Array) || !(sig instanceof Uint8Array) || !(msg instanceof Uint8Array)) return false;
    if (pk.length !== 32 || sig.length !== 64) return false;
    if (native) {
      return cryptoVerify(null, msg, publicKeys.get(pk), sig);
    }
    return ed25519.verify(sig, msg, pk, { zip215: false });
  } catch {
    return false;
  }
}

export function spkiDer(pk: Uint8Array): Uint8Array {
  if (pk.length !== 32) throw new AtlasError("ERR_INVALID_IDENTITY", "ed25519 public key must be 32 bytes");
  return concat(SPKI_PREFIX, pk);
}

// --- PEM (RFC 7468) -------------------------------------------------------------------------

function toBase64(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

export function pemEncode(der: Uint8Array, label: string): string {
  const b64 = toBase64(der);
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

/** Decode the first PEM block with this label; throws a one-line reason (no key bytes in it). */
export function pemDecode(pem: string, label: string): Uint8Array {
  const begin = `-----BEGIN ${label}-----`;
  const end = `-----END ${label}-----`;
  const i = pem.indexOf(begin);
  if (i < 0) {
    const other = /-----BEGIN ([A-Z0-9 ]+)-----/.exec(pem);
    throw new AtlasError(
      "ERR_IO",
      other ? `expected a PEM "${label}" block, found "${other[1]}"` : `no PEM "${label}" block found`,
    );
  }
  const j = pem.indexOf(end, i + begin.length);
  if (j < 0) throw new AtlasError("ERR_IO", `PEM "${label}" block has no END line`);
  const body = pem.slice(i + begin.length, j).replace(/\s+/g, "");
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body) || body.length % 4 !== 0) {
    throw new AtlasError("ERR_IO", `PEM "${label}" block is not valid base64`);
  }
  const bin = atob(body);
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

export function seedToPkcs8Pem(seed: Uint8Array): string {
  checkSeed(seed);
  return pemEncode(concat(PKCS8_PREFIX, seed), "PRIVATE KEY");
}

export function pkcs8PemToSeed(pem: string): Uint8Array {
  if (pem.includes("-----BEGIN ENCRYPTED PRIVATE KEY-----")) {
    throw new AtlasError("ERR_IO", "encrypted private keys are not supported; decrypt it with `openssl pkey`");
  }
  const der = pemDecode(pem, "PRIVATE KEY");
  if (der.length !== PKCS8_PREFIX.length + 32 || !startsWith(der, PKCS8_PREFIX)) {
    throw new AtlasError("ERR_IO", "not an ed25519 PKCS#8 private key");
  }
  return der.slice(PKCS8_PREFIX.length);
}
