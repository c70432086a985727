/**
 * The self-signed X.509 certificate each node presents in TLS (docs/protocol.md#transport). Its subject public
 * key IS the node key, so the TLS handshake proves possession of the node key; peers do not
 * trust any CA, they pull the key out of the certificate (peerKeyFromCertificate) and compare
 * it with the node ID / Hello key. Hand-written DER keeps us free of an ASN.1 dependency.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { AtlasError } from "../errors.ts";
import { NODE_ID_PREFIX, nodeIdFromPublicKey } from "./node-id.ts";
import { pemEncode, publicKeyFromSeed, signEd25519, SPKI_PREFIX, spkiDer, verifyEd25519 } from "./keys.ts";

/**
 * Signature algorithms to hand to BoringSSL (quiche `Config.withBoringSslCtx(..., sigalgs)`):
 * its default list omits ed25519, and with it the TLS handshake fails (CRYPTO_ERROR 296).
 */
export const TLS_SIGALGS = "ed25519";

// --- DER writer -----------------------------------------------------------------------------

function len(n: number): number[] {
  if (n < 0x80) return [n];
  const out: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) out.unshift(v & 0xff);
  return [0x80 | out.length, ...out];
}

function tlv(tag: number, ...content: Uint8Array[]): Uint8Array {
  const body = content.reduce((n, c) => n + c.length, 0);
  const head = [tag, ...len(body)];
  const out = new Uint8Array(head.length + body);
  out.set(head, 0);
  let off = head.length;
  for (const c of content) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

const ascii = (s: string) => new TextEncoder().encode(s);
const bytes = (...b: number[]) => Uint8Array.from(b);

/** AlgorithmIdentifier id-Ed25519 (1.3.101.112), parameters absent (RFC 8410 §3). */
const ALG_ED25519 = bytes(0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70);
const OID_CN = bytes(0x06, 0x03, 0x55, 0x04, 0x03);
const OID_BASIC_CONSTRAINTS = bytes(0x06, 0x03, 0x55, 0x1d, 0x13);

// Fixed validity keeps the certificate deterministic and never expiring; peers do not check
// dates anyway. RFC 5280 §4.1.2.5: UTCTime through 2049, 99991231235959Z for "no expiry".
const NOT_BEFORE = tlv(0x17, ascii("000101000000Z"));
const NOT_AFTER = tlv(0x18, ascii("99991231235959Z"));

function cnName(cn: string): Uint8Array {
  return tlv(0x30, tlv(0x31, tlv(0x30, OID_CN, tlv(0x0c, ascii(cn)))));
}

/** Positive, minimally encoded 16-byte serial derived from the key (deterministic, unique per key). */
function serialFor(pk: Uint8Array): Uint8Array {
  const h = sha256(new Uint8Array([...ascii("atlas-cert-serial"), ...pk])).slice(0, 16);
  h[0] = (h[0]! & 0x7f) | 0x40;
  return tlv(0x02, h);
}

export function makeSelfSignedCert(seed: Uint8Array): Uint8Array {
  const pk = publicKeyFromSeed(seed);
  const name = cnName(nodeIdFromPublicKey(pk).slice(NODE_ID_PREFIX.length));
  // basicConstraints critical, cA FALSE: this key signs no other certificate.
  const extensions = tlv(
    0xa3,
    tlv(0x30, tlv(0x30, OID_BASIC_CONSTRAINTS, bytes(0x01, 0x01, 0xff), tlv(0x04, bytes(0x30, 0x00)))),
  );
  const tbs = tlv(
    0x30,
    tlv(0xa0, bytes(0x02, 0x01, 0x02)), // version v3
    serialFor(pk),
    ALG_ED25519,
    name,
    tlv(0x30, NOT_BEFORE, NOT_AFTER),
    name,
    spkiDer(pk),
    extensions,
  );
  const sig = signEd25519(seed, tbs);
  return tlv(0x30, tbs, ALG_ED25519, tlv(0x03, bytes(0x00), sig));
}

export function derToPem(der: Uint8Array, label: string): string {
  return pemEncode(der, label);
}

// --- strict DER reader ----------------------------------------------------------------------

interface Tlv {
  tag: number;
  start: number; // offset of the tag byte
  body: number; // offset of the content
  end: number; // offset just past the content
}

function fail(reason: string): never {
  throw new AtlasError("ERR_HANDSHAKE_FAILED", `peer certificate ${reason}`);
}

/** One TLV at `off`, bounded by `limit`; rejects high tags, indefinite and non-minimal lengths. */
function readTlv(buf: Uint8Array, off: number, limit: number): Tlv {
  if (off + 2 > limit) fail("is truncated");
  const tag = buf[off]!;
  if ((tag & 0x1f) === 0x1f) fail("uses an unsupported ASN.1 tag");
  let n = buf[off + 1]!;
  let body = off + 2;
  if (n & 0x80) {
    const k = n & 0x7f;
    if (k === 0 || k > 3) fail("has an invalid DER length");
    if (body + k > limit) fail("is truncated");
    if (buf[body] === 0) fail("has a non-minimal DER length");
    n = 0;
    for (let i = 0; i < k; i++) n = n * 256 + buf[body + i]!;
    if (n < 0x80) fail("has a non-minimal DER length");
    body += k;
  }
  const end = body + n;
  if (end > limit) fail("is truncated");
  return { tag, start: off, body, end };
}

function expect(buf: Uint8Array, off: number, limit: number, tag: number, what: string): Tlv {
  const t = readTlv(buf, off, limit);
  if (t.tag !== tag) fail(`has a malformed ${what}`);
  return t;
}

function equalAt(buf: Uint8Array, t: Tlv, want: Uint8Array): boolean {
  if (t.end - t.start !== want.length) return false;
  for (let i = 0; i < want.length; i++) if (buf[t.start + i] !== want[i]) return false;
  return true;
}

/**
 * Certificates already checked, by their exact DER bytes → key: a peer presents the same
 * certificate on every connection, and the check (parse + an ed25519 verification) is a pure
 * function of those bytes. Failures are not cached.
 */
const checked = new Map<string, Uint8Array>();
const CHECKED_MAX = 256;

/** Extract and authenticate the ed25519 key of a peer's self-signed certificate (DER). */
export function peerKeyFromCertificate(der: Uint8Array): Uint8Array {
  const k = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString("latin1");
  const hit = checked.get(k);
  if (hit) return Uint8Array.from(hit);
  try {
    const pk = parseCert(der);
    if (checked.size >= CHECKED_MAX) checked.delete(checked.keys().next().value!);
    checked.set(k, Uint8Array.from(pk));
    return pk;
  } catch (e) {
    if (e instanceof AtlasError) throw e;
    // Belt and braces: a parser bug must surface as a handshake failure, not a crash.
    throw new AtlasError("ERR_HANDSHAKE_FAILED", "peer certificate is malformed", { cause: e });
  }
}

function parseCert(der: Uint8Array): Uint8Array {
  if (!(der instanceof Uint8Array) || der.length === 0) fail("is missing");
  const cert = expect(der, 0, der.length, 0x30, "Certificate");
  if (cert.end !== der.length) fail("has trailing bytes");

  const tbs = expect(der, cert.body, cert.end, 0x30, "tbsCertificate");
  const sigAlg = expect(der, tbs.end, cert.end, 0x30, "signatureAlgorithm");
  const sigVal = expect(der, sigAlg.end, cert.end, 0x03, "signatureValue");
  if (sigVal.end !== cert.end) fail("has trailing fields");
  if (!equalAt(der, sigAlg, ALG_ED25519)) fail("is not signed with ed25519");
  if (sigVal.end - sigVal.body !== 65 || der[sigVal.body] !== 0) fail("has a malformed ed25519 signature");

  // tbsCertificate: [0] version, serial, signature, issuer, validity, subject, SPKI, [1][2][3]...
  let off = tbs.body;
  let t = readTlv(der, off, tbs.end);
  if (t.tag === 0xa0) {
    off = t.end;
    t = readTlv(der, off, tbs.end);
  }
  if (t.tag !== 0x02) fail("has a malformed serial number");
  const innerAlg = expect(der, t.end, tbs.end, 0x30, "signature algorithm");
  if (!equalAt(der, innerAlg, ALG_ED25519)) fail("is not signed with ed25519");
  const issuer = expect(der, innerAlg.end, tbs.end, 0x30, "issuer");
  const validity = expect(der, issuer.end, tbs.end, 0x30, "validity");
  const subject = expect(der, validity.end, tbs.end, 0x30, "subject");
  const spki = expect(der, subject.end, tbs.end, 0x30, "subjectPublicKeyInfo");
  if (spki.end - spki.start !== SPKI_PREFIX.length + 32) fail("does not carry an ed25519 public key");
  for (let i = 0; i < SPKI_PREFIX.length; i++) {
    if (der[spki.start + i] !== SPKI_PREFIX[i]) fail("does not carry an ed25519 public key");
  }
  // Remaining optional fields ([1] issuerUID, [2] subjectUID, [3] extensions) must at least be well-formed.
  for (off = spki.end; off < tbs.end; off = readTlv(der, off, tbs.end).end);

  // Copy into plain Uint8Arrays: Buffer#slice would alias the caller's buffer.
  const pk = Uint8Array.from(der.subarray(spki.end - 32, spki.end));
  const sig = Uint8Array.from(der.subarray(sigVal.body + 1, sigVal.end));
  if (!verifyEd25519(pk, der.subarray(tbs.start, tbs.end), sig)) fail("self-signature does not verify");
  return pk;
}
