import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createPublicKey, X509Certificate } from "node:crypto";
import { execFileSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AtlasError } from "../src/errors.ts";
import { derToPem, makeSelfSignedCert, peerKeyFromCertificate, TLS_SIGALGS } from "../src/identity/cert.ts";
import { type Identity, identityFromSeed } from "../src/identity/identity.ts";
import { generateSeed, publicKeyFromSeed, spkiDer } from "../src/identity/keys.ts";

const hasOpenssl = (() => {
  try {
    execFileSync("which", ["openssl"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();
const opensslSkip = hasOpenssl ? false : "openssl not installed";

const seed = generateSeed();
const id = identityFromSeed(seed);
const der = id.certDer;
const cnHex = id.nodeId.slice("atlas_".length);

function indexOf(hay: Uint8Array, needle: Uint8Array, from = 0): number {
  return Buffer.from(hay).indexOf(Buffer.from(needle), from);
}

function rejects(input: Uint8Array, re?: RegExp): void {
  const hex = Buffer.from(input).toString("hex");
  assert.throws(
    () => peerKeyFromCertificate(input),
    (e: unknown) => {
      assert.ok(e instanceof AtlasError, `expected AtlasError, got ${String(e)}`);
      assert.equal(e.code, "ERR_HANDSHAKE_FAILED");
      assert.match(e.message, /^peer certificate /);
      if (re) assert.match(e.message, re);
      return true;
    },
    `input ${hex.length > 2000 ? hex.slice(0, 2000) + "…" : hex}`,
  );
}

async function withTmp<T>(f: (dir: string) => T | Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), "atlas-cert-"));
  try {
    return await f(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe("makeSelfSignedCert", () => {
  test("the certificate is the same for one key and differs between keys", () => {
    assert.deepEqual(makeSelfSignedCert(seed), der);
    const other = makeSelfSignedCert(generateSeed());
    assert.notDeepEqual(other, der);
    assert.equal(new X509Certificate(other).serialNumber === new X509Certificate(der).serialNumber, false);
  });

  test("node:crypto reads its ed25519 key and CN and verifies its self-signature", () => {
    const x = new X509Certificate(der);
    assert.equal(x.subject, `CN=${cnHex}`);
    assert.equal(x.issuer, `CN=${cnHex}`);
    assert.equal(x.publicKey.asymmetricKeyType, "ed25519");
    assert.deepEqual(new Uint8Array(x.publicKey.export({ type: "spki", format: "der" })), spkiDer(id.publicKey));
    assert.ok(x.verify(x.publicKey));
    assert.ok(x.verify(createPublicKey(id.keyPem)));
    assert.ok(x.checkIssued(x));
    assert.equal(x.ca, false);
    assert.ok(new Date(x.validFrom) <= new Date("2000-01-02"));
    assert.ok(new Date(x.validTo).getUTCFullYear() === 9999);
    // The check must be able to fail: a different key does not verify it.
    assert.ok(!x.verify(new X509Certificate(makeSelfSignedCert(generateSeed())).publicKey));
  });

  test("its PEM form is the one node:crypto and the identity expose", () => {
    const pem = derToPem(der, "CERTIFICATE");
    assert.match(pem, /^-----BEGIN CERTIFICATE-----\n([A-Za-z0-9+/=]{1,64}\n)+-----END CERTIFICATE-----\n$/);
    assert.equal(pem, id.certPem);
    assert.deepEqual(new Uint8Array(new X509Certificate(pem).raw), der);
  });

  test("openssl parses it and verifies its self-signature", { skip: opensslSkip }, async () => {
    await withTmp(async (dir) => {
      const file = join(dir, "cert.pem");
      await writeFile(file, id.certPem);
      const text = execFileSync("openssl", ["x509", "-in", file, "-noout", "-text"], { encoding: "utf8" });
      assert.match(text, /Signature Algorithm: ED25519/);
      assert.match(text, /Public Key Algorithm: ED25519/);
      assert.ok(text.includes(`Subject: CN = ${cnHex}`), text);
      assert.match(text, /Version: 3/);
      // -check_ss_sig: openssl skips a trust anchor's own signature unless asked.
      execFileSync("openssl", ["verify", "-check_ss_sig", "-CAfile", file, file], { stdio: "pipe" });

      const bad = Uint8Array.from(der);
      bad[bad.length - 1]! ^= 1;
      const badFile = join(dir, "bad.pem");
      await writeFile(badFile, derToPem(bad, "CERTIFICATE"));
      assert.throws(() =>
        execFileSync("openssl", ["verify", "-check_ss_sig", "-CAfile", badFile, badFile], { stdio: "pipe" })
      );
    });
  });
});

describe("peerKeyFromCertificate", () => {
  test("the peer key is read back from our own certificate", () => {
    assert.deepEqual(peerKeyFromCertificate(der), id.publicKey);
    // A Buffer in (as quiche hands out) still gives a plain, independent Uint8Array back.
    const buf = Buffer.from(der);
    const pk = peerKeyFromCertificate(buf);
    assert.deepEqual(pk, id.publicKey);
    pk.fill(0);
    assert.deepEqual(peerKeyFromCertificate(buf), id.publicKey);
  });

  test("a certificate checked before is accepted from the cache, but never a tampered copy of it", () => {
    for (let i = 0; i < 3; i++) assert.deepEqual(peerKeyFromCertificate(Uint8Array.from(der)), id.publicKey);
    const bad = Uint8Array.from(der);
    bad[bad.length - 7]! ^= 0x01;
    for (let i = 0; i < 2; i++) rejects(bad, /self-signature does not verify/);
  });

  test("a tampered signature is refused", () => {
    const bad = Uint8Array.from(der);
    bad[bad.length - 5]! ^= 0x40;
    rejects(bad, /self-signature does not verify/);
  });

  test("a tampered tbsCertificate (CN and key swapped) is refused", () => {
    const cn = indexOf(der, new TextEncoder().encode(cnHex));
    assert.ok(cn > 0);
    const bad = Uint8Array.from(der);
    bad[cn] = bad[cn] === 0x61 ? 0x62 : 0x61; // still a valid hex CN, still valid DER
    rejects(bad, /self-signature does not verify/);

    // Someone else's key pasted into our certificate: the signature no longer matches.
    const pkAt = indexOf(der, id.publicKey);
    const swapped = Uint8Array.from(der);
    swapped.set(publicKeyFromSeed(generateSeed()), pkAt);
    rejects(swapped, /self-signature does not verify/);
  });

  test("a certificate with another algorithm than ed25519 is refused", () => {
    // Outer signatureAlgorithm -> Ed448 OID (1.3.101.113).
    const alg = Uint8Array.from([0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70]);
    const outer = Uint8Array.from(der);
    const outerAt = indexOf(der, alg, der.length - 80);
    outer[outerAt + 6] = 0x71;
    rejects(outer, /not signed with ed25519/);
    // Inner (tbs) signature algorithm.
    const inner = Uint8Array.from(der);
    inner[indexOf(der, alg) + 6] = 0x71;
    rejects(inner, /not signed with ed25519/);
    // Subject key OID -> X25519 (1.3.101.110).
    const spki = Uint8Array.from(der);
    spki[indexOf(der, spkiDer(id.publicKey)) + 8] = 0x6e;
    rejects(spki, /does not carry an ed25519 public key/);
  });

  test("an ECDSA certificate made by openssl is refused", { skip: opensslSkip }, async () => {
    await withTmp((dir) => {
      const k = join(dir, "k.pem");
      const c = join(dir, "c.pem");
      execFileSync("openssl", [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-keyout",
        k,
        "-out",
        c,
        "-nodes",
        "-subj",
        "/CN=x",
        "-days",
        "1",
      ], { stdio: "pipe" });
      const ecDer = new Uint8Array(
        new X509Certificate(execFileSync("openssl", ["x509", "-in", c], { encoding: "utf8" })).raw,
      );
      rejects(ecDer, /not signed with ed25519/);
    });
  });

  test(
    "accepts an ed25519 self-signed certificate made by openssl (different layout)",
    { skip: opensslSkip },
    async () => {
      await withTmp((dir) => {
        const k = join(dir, "k.pem");
        const c = join(dir, "c.pem");
        execFileSync("openssl", [
          "req",
          "-x509",
          "-newkey",
          "ed25519",
          "-keyout",
          k,
          "-out",
          c,
          "-nodes",
          "-subj",
          "/CN=other",
          "-days",
          "1",
        ], { stdio: "pipe" });
        const x = new X509Certificate(execFileSync("openssl", ["x509", "-in", c], { encoding: "utf8" }));
        const spki = x.publicKey.export({ type: "spki", format: "der" });
        assert.deepEqual(
          peerKeyFromCertificate(new Uint8Array(x.raw)),
          new Uint8Array(spki.subarray(spki.length - 32)),
        );
      });
    },
  );

  test("an encoding that is not DER, has trailing bytes or is truncated is refused", () => {
    assert.equal(der[1], 0x82); // outer length in long form, 2 bytes
    const nonMinimal = new Uint8Array(der.length + 1);
    nonMinimal.set([0x30, 0x83, 0x00], 0);
    nonMinimal.set(der.subarray(2), 3);
    rejects(nonMinimal, /non-minimal/);
    rejects(Uint8Array.from([...der, 0]), /trailing/);
    rejects(new Uint8Array(0));
    for (let n = 0; n < der.length; n++) rejects(der.subarray(0, n));
  });

  test("random and mutated input gives only AtlasError", () => {
    const rnd = (n: number) => crypto.getRandomValues(new Uint8Array(n));
    const int = (n: number) => Math.floor(Math.random() * n);
    for (let i = 0; i < 600; i++) {
      let input: Uint8Array;
      let other: Uint8Array | undefined;
      switch (i % 6) {
        case 0: // pure noise
          input = rnd(int(600));
          break;
        case 1: // noise behind a plausible SEQUENCE header
          input = Uint8Array.from([0x30, 0x82, int(3), int(256), ...rnd(int(600))]);
          break;
        case 2: {
          // flip 1-4 bytes anywhere
          input = Uint8Array.from(der);
          for (let k = 1 + int(4); k > 0; k--) input[int(input.length)]! ^= 1 + int(255);
          break;
        }
        case 3: {
          // delete a byte
          const at = int(der.length);
          input = Uint8Array.from([...der.subarray(0, at), ...der.subarray(at + 1)]);
          break;
        }
        case 4: {
          // insert a byte
          const at = int(der.length);
          input = Uint8Array.from([...der.subarray(0, at), int(256), ...der.subarray(at)]);
          break;
        }
        default: {
          // splice two certificates
          other = makeSelfSignedCert(rnd(32));
          const at = 1 + int(der.length - 2);
          input = Uint8Array.from([...der.subarray(0, at), ...other.subarray(at)]);
        }
      }
      if (Buffer.from(input).equals(Buffer.from(der))) continue;
      // A splice before the first differing byte is simply the other, valid, certificate.
      if (other && Buffer.from(input).equals(Buffer.from(other))) {
        assert.equal(peerKeyFromCertificate(input).length, 32);
        continue;
      }
      rejects(input);
    }
  });
});

// The real consumer of the certificate is BoringSSL inside quiche; load it lazily and skip
// (with the reason) only if the native binding cannot load on this platform.
type Quiche = (typeof import("@matrixai/quic/native/index.js"))["quiche"];
let quiche: Quiche | undefined;
let skip: string | false = false;
try {
  quiche = (await import("@matrixai/quic/native/index.js")).quiche;
} catch (e) {
  skip = `@matrixai/quic native binding unavailable: ${(e as Error).message}`;
}

describe("BoringSSL (quiche) accepts the certificate in mutual TLS", () => {
  const enc = new TextEncoder();
  const config = (keyPem: string, certPem: string) => {
    const c = quiche!.Config.withBoringSslCtx(
      true,
      true,
      null,
      [enc.encode(keyPem)],
      [enc.encode(certPem)],
      TLS_SIGALGS,
    );
    c.setApplicationProtos(["atlas/1"]);
    return c;
  };

  /** Drive a QUIC handshake in memory; returns both connections once the server saw the client cert. */
  function handshake(client: Identity, serverKeyPem: string, serverCertPem: string) {
    const q = quiche!;
    const ca = { host: "127.0.0.1", port: 40001 };
    const sa = { host: "127.0.0.1", port: 40002 };
    const cc = q.Connection.connect(
      null,
      crypto.getRandomValues(new Uint8Array(20)),
      ca,
      sa,
      config(client.keyPem, client.certPem),
    );
    let sc: ReturnType<typeof q.Connection.accept> | undefined;
    const buf = new Uint8Array(65535);
    for (let round = 0; round < 20 && !(cc.isEstablished() && sc?.isEstablished() && sc.peerCertChain()); round++) {
      for (let r; (r = cc.send(buf)) !== null;) {
        const pkt = buf.slice(0, r[0]);
        sc ??= q.Connection.accept(
          crypto.getRandomValues(new Uint8Array(20)),
          q.Header.fromSlice(pkt, 20).dcid,
          sa,
          ca,
          config(serverKeyPem, serverCertPem),
        );
        sc.recv(pkt, { from: ca, to: sa });
      }
      if (sc) { for (let r; (r = sc.send(buf)) !== null;) cc.recv(buf.slice(0, r[0]), { from: sa, to: ca }); }
    }
    return { cc, sc: sc! };
  }

  test("both sides extract the other's node key from the TLS certificate", { skip }, () => {
    const a = identityFromSeed(generateSeed());
    const b = identityFromSeed(generateSeed());
    const { cc, sc } = handshake(a, b.keyPem, b.certPem);
    assert.ok(cc.isEstablished() && sc.isEstablished());
    assert.deepEqual(peerKeyFromCertificate(cc.peerCertChain()![0]!), b.publicKey);
    assert.deepEqual(peerKeyFromCertificate(sc.peerCertChain()![0]!), a.publicKey);
  });

  test("a certificate presented without its private key does not complete TLS", { skip }, () => {
    const a = identityFromSeed(generateSeed());
    const b = identityFromSeed(generateSeed());
    const thief = identityFromSeed(generateSeed());
    // The thief presents b's certificate with its own key: CertificateVerify cannot match.
    assert.throws(() => {
      const { cc, sc } = handshake(a, thief.keyPem, b.certPem);
      if (!cc.isEstablished() || !sc.isEstablished()) throw new Error("not established");
    });
  });
});
