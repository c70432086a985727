import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, verify as nodeVerify } from "node:crypto";
import { execFileSync } from "node:child_process";
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AtlasError } from "../src/errors.ts";
import { type HomePaths, homePaths } from "../src/config/paths.ts";
import {
  isNodeId,
  nodeIdFromPublicKey,
  parseIdPrefix,
  resolveNodeIdPrefix,
  shortNodeId,
} from "../src/identity/node-id.ts";
import {
  generateSeed,
  pkcs8PemToSeed,
  publicKeyFromSeed,
  seedToPkcs8Pem,
  spkiDer,
  verifyEd25519,
} from "../src/identity/keys.ts";
import { identityFromSeed, initIdentity, loadIdentity } from "../src/identity/identity.ts";
import {
  addSkill,
  loadProfile,
  normalizeSkill,
  type Profile,
  removeSkill,
  saveProfile,
  validateBio,
  validateName,
} from "../src/identity/profile.ts";

const hex = (s: string) => Uint8Array.from(Buffer.from(s, "hex"));
const toHex = (b: Uint8Array) => Buffer.from(b).toString("hex");

// RFC 8032 §7.1 TEST 1.
const RFC_SEED = hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
const RFC_PK = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
const RFC_SIG_EMPTY =
  "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";

const hasOpenssl = (() => {
  try {
    execFileSync("which", ["openssl"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();
const opensslSkip = hasOpenssl ? false : "openssl not installed";

function isAtlas(code: string, re?: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof AtlasError, `expected AtlasError, got ${String(e)}`);
    assert.equal(e.code, code);
    if (re) assert.match(e.message, re);
    return true;
  };
}

async function tempHome(): Promise<HomePaths> {
  return homePaths(await mkdtemp(join(tmpdir(), "atlas-id-")));
}

/** Node ID computed without any Atlas code: node:crypto key from PKCS#8, SPKI export, sha256. */
function independentNodeId(seed: Uint8Array): string {
  const pkcs8 = Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), seed]);
  const key = createPrivateKey({ key: pkcs8, format: "der", type: "pkcs8" });
  const spki = createPublicKey(key).export({ type: "spki", format: "der" });
  return "atlas_" + createHash("sha256").update(spki.subarray(spki.length - 32)).digest("hex");
}

describe("node ID", () => {
  test("the RFC 8032 seed gives the known node ID", () => {
    const pk = publicKeyFromSeed(RFC_SEED);
    assert.equal(toHex(pk), RFC_PK);
    const id = nodeIdFromPublicKey(pk);
    assert.equal(id, independentNodeId(RFC_SEED));
    assert.equal(id, "atlas_21fe31dfa154a261626bf854046fd2271b7bed4b6abe45aa58877ef47f9721b9");
    assert.equal(id.length, 70);
    assert.ok(isNodeId(id));
  });

  test("node IDs match an independent derivation with node:crypto for random seeds", () => {
    for (let i = 0; i < 20; i++) {
      const seed = generateSeed();
      assert.equal(nodeIdFromPublicKey(publicKeyFromSeed(seed)), independentNodeId(seed));
    }
  });

  test("isNodeId accepts only atlas_ and 64 lowercase hex", () => {
    const id = "atlas_" + "ab".repeat(32);
    assert.ok(isNodeId(id));
    assert.ok(!isNodeId(id.toUpperCase()));
    assert.ok(!isNodeId("atlas_" + "AB".repeat(32)));
    assert.ok(!isNodeId(id + "0"));
    assert.ok(!isNodeId(id.slice(0, -1)));
    assert.ok(!isNodeId("ab".repeat(32)));
    assert.ok(!isNodeId("atlas_" + "g".repeat(64)));
    assert.ok(!isNodeId(id + "\n"));
  });

  test("shortNodeId keeps atlas_ and 12 hex digits and an ellipsis", () => {
    assert.equal(shortNodeId("atlas_" + "0123456789abcdef".repeat(4)), "atlas_0123456789ab…");
  });

  test("parseIdPrefix accepts 8 to 64 hex digits, with or without atlas_, in any case", () => {
    assert.equal(parseIdPrefix("atlas_abcd1234"), "abcd1234");
    assert.equal(parseIdPrefix("abcd1234"), "abcd1234");
    assert.equal(parseIdPrefix("ABCD1234EF"), "abcd1234ef");
    assert.equal(parseIdPrefix("ATLAS_ABCD1234"), "abcd1234");
    assert.equal(parseIdPrefix("abcd123"), null); // 7 hex: too short
    assert.equal(parseIdPrefix("atlas_abcd123"), null);
    assert.equal(parseIdPrefix("abcd123g"), null);
    assert.equal(parseIdPrefix("atlas_"), null);
    assert.equal(parseIdPrefix(""), null);
    assert.equal(parseIdPrefix("a".repeat(65)), null);
    assert.equal(parseIdPrefix("1.2.3.4:4433"), null);
  });

  describe("resolveNodeIdPrefix", () => {
    const a = "atlas_abcd1234" + "0".repeat(56);
    const b = "atlas_abcd1234" + "1".repeat(56);
    const c = "atlas_ffff0000" + "2".repeat(56);
    const known = [a, b, c];

    test("a unique prefix resolves to its node ID, with or without atlas_, in any case", () => {
      assert.equal(resolveNodeIdPrefix("ffff0000", known), c);
      assert.equal(resolveNodeIdPrefix("atlas_ffff0000", known), c);
      assert.equal(resolveNodeIdPrefix("FFFF0000", known), c);
      assert.equal(resolveNodeIdPrefix("abcd12340", known), a);
      assert.equal(resolveNodeIdPrefix(b, known), b);
      assert.equal(resolveNodeIdPrefix(b.toUpperCase(), new Set(known)), b);
    });

    test("an ambiguous prefix is refused listing every match", () => {
      assert.throws(
        () => resolveNodeIdPrefix("abcd1234", known),
        (e: unknown) => {
          isAtlas("ERR_USAGE", /^ambiguous node ID prefix abcd1234: matches /)(e);
          const msg = (e as Error).message;
          assert.ok(msg.includes(a) && msg.includes(b) && !msg.includes(c), msg);
          return true;
        },
      );
    });

    test("a prefix that matches nothing or is shorter than 8 hex digits is a usage error", () => {
      assert.throws(
        () => resolveNodeIdPrefix("00000000", known),
        isAtlas("ERR_USAGE", /^no known peer matches 00000000$/),
      );
      assert.throws(() => resolveNodeIdPrefix("abcd", known), isAtlas("ERR_USAGE", /at least 8 hex/));
      assert.throws(() => resolveNodeIdPrefix("atlas_abcd123", known), isAtlas("ERR_USAGE"));
      assert.throws(() => resolveNodeIdPrefix("ffff0000", []), isAtlas("ERR_USAGE", /no known peer/));
    });
  });
});

describe("keys", () => {
  test("a key survives a PKCS#8 PEM round trip and node:crypto derives the same public key", () => {
    const seed = generateSeed();
    const pem = seedToPkcs8Pem(seed);
    assert.match(pem, /^-----BEGIN PRIVATE KEY-----\n[A-Za-z0-9+/=\n]+\n-----END PRIVATE KEY-----\n$/);
    assert.deepEqual(pkcs8PemToSeed(pem), seed);
    const spki = createPublicKey(createPrivateKey(pem)).export({ type: "spki", format: "der" });
    assert.deepEqual(new Uint8Array(spki), spkiDer(publicKeyFromSeed(seed)));
  });

  test("a malformed PEM gives a clear AtlasError", () => {
    assert.throws(() => pkcs8PemToSeed(""), isAtlas("ERR_IO", /no PEM "PRIVATE KEY" block/));
    assert.throws(() => pkcs8PemToSeed("garbage"), isAtlas("ERR_IO"));
    assert.throws(
      () => pkcs8PemToSeed("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
      isAtlas("ERR_IO", /found "CERTIFICATE"/),
    );
    assert.throws(
      () => pkcs8PemToSeed("-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n"),
      isAtlas("ERR_IO", /base64/),
    );
    assert.throws(() => pkcs8PemToSeed("-----BEGIN PRIVATE KEY-----\nAAAA\n"), isAtlas("ERR_IO", /END/));
    // Well-formed PKCS#8 of other key types (x25519 has the same length, a different OID).
    const others = [
      generateKeyPairSync("x25519").privateKey,
      generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey,
    ];
    for (const key of others) {
      const pem = key.export({ type: "pkcs8", format: "pem" }).toString();
      assert.throws(
        () => pkcs8PemToSeed(pem),
        isAtlas("ERR_IO", /not an ed25519 PKCS#8 private key/),
        key.asymmetricKeyType,
      );
    }
    const truncated = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n";
    assert.throws(() => pkcs8PemToSeed(truncated), isAtlas("ERR_IO", /not an ed25519/));
    assert.throws(
      () => pkcs8PemToSeed("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"),
      isAtlas("ERR_IO", /encrypted/),
    );
  });

  test("signatures match RFC 8032 and verify both ways with node:crypto", () => {
    const id = identityFromSeed(RFC_SEED);
    assert.equal(toHex(id.sign(new Uint8Array())), RFC_SIG_EMPTY);
    const msg = new TextEncoder().encode("atlas-handshake-v1 test");
    const sig = id.sign(msg);
    assert.ok(nodeVerify(null, msg, createPublicKey(createPrivateKey(id.keyPem)), sig));
    assert.ok(verifyEd25519(id.publicKey, msg, sig));
    const bad = Uint8Array.from(sig);
    bad[10]! ^= 1;
    assert.ok(!verifyEd25519(id.publicKey, msg, bad));
    assert.ok(!verifyEd25519(id.publicKey, Uint8Array.from([...msg, 0]), sig));
  });

  test("verifyEd25519 answers false, never throws, on malformed input", () => {
    const pk = publicKeyFromSeed(generateSeed());
    assert.equal(verifyEd25519(new Uint8Array(31), new Uint8Array(1), new Uint8Array(64)), false);
    assert.equal(verifyEd25519(pk, new Uint8Array(1), new Uint8Array(63)), false);
    assert.equal(verifyEd25519(new Uint8Array(32).fill(0xff), new Uint8Array(1), new Uint8Array(64).fill(0xff)), false);
    assert.equal(verifyEd25519(null as unknown as Uint8Array, new Uint8Array(1), new Uint8Array(64)), false);
    for (let i = 0; i < 200; i++) {
      const r = crypto.getRandomValues(new Uint8Array(96));
      assert.equal(verifyEd25519(r.subarray(0, 32), r, r.subarray(32)), false);
    }
  });

  test("openssl accepts our key and derives the same public key", { skip: opensslSkip }, async () => {
    const dir = await mkdtemp(join(tmpdir(), "atlas-key-"));
    try {
      const seed = generateSeed();
      const file = join(dir, "key.pem");
      await writeFile(file, seedToPkcs8Pem(seed), { mode: 0o600 });
      execFileSync("openssl", ["pkey", "-in", file, "-noout"], { stdio: "pipe" });
      const pub = execFileSync("openssl", ["pkey", "-in", file, "-pubout"], { encoding: "utf8" });
      const der = Buffer.from(pub.replace(/-----[A-Z ]+-----|\s/g, ""), "base64");
      assert.deepEqual(new Uint8Array(der), spkiDer(publicKeyFromSeed(seed)));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("we read a key made by openssl genpkey", { skip: opensslSkip }, () => {
    const pem = execFileSync("openssl", ["genpkey", "-algorithm", "ed25519"], { encoding: "utf8" });
    const seed = pkcs8PemToSeed(pem);
    const spki = createPublicKey(pem).export({ type: "spki", format: "der" });
    assert.deepEqual(new Uint8Array(spki), spkiDer(publicKeyFromSeed(seed)));
  });
});

describe("identity files", () => {
  test("init writes a 0600 key in a 0700 keys directory and a profile with a default name, and loads back the same identity", async () => {
    const paths = await tempHome();
    try {
      const id = await initIdentity(paths);
      assert.ok(isNodeId(id.nodeId));
      assert.equal((await stat(paths.keyFile)).mode & 0o777, 0o600);
      assert.equal((await stat(paths.keysDir)).mode & 0o777, 0o700);
      assert.ok((await stat(paths.stateDir)).isDirectory());
      const pem = await readFile(paths.keyFile, "utf8");
      assert.match(pem, /^-----BEGIN PRIVATE KEY-----/);
      assert.equal(independentNodeId(pkcs8PemToSeed(pem)), id.nodeId);

      const profile = await loadProfile(paths);
      assert.equal(profile.name, "agent-" + id.nodeId.slice(6, 12));
      assert.deepEqual(profile.skills, []);

      const loaded = await loadIdentity(paths);
      assert.equal(loaded.nodeId, id.nodeId);
      assert.deepEqual(loaded.publicKey, id.publicKey);
      assert.equal(loaded.keyPem, pem);
      assert.deepEqual(loaded.certDer, id.certDer);
    } finally {
      await rm(paths.home, { recursive: true, force: true });
    }
  });

  test("init refuses to overwrite an identity unless forced, and a forced init keeps the card but drops the operator binding", async () => {
    const paths = await tempHome();
    try {
      const first = await initIdentity(paths, { name: "alice" });
      assert.equal((await loadProfile(paths)).name, "alice");
      await assert.rejects(
        initIdentity(paths),
        isAtlas(
          "ERR_USAGE",
          new RegExp(
            `^identity already exists at ${
              paths.keyFile.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
            } \\(use --force to replace it\\)$`,
          ),
        ),
      );
      assert.equal((await loadIdentity(paths)).nodeId, first.nodeId, "refused init must not touch the key");

      await saveProfile(paths, {
        name: "alice",
        bio: "hi",
        skills: ["rust"],
        operator: { fid: 1, username: "a", custody_address: "0x1", message: "m", signature: "0x2" },
      });
      const second = await initIdentity(paths, { force: true });
      assert.notEqual(second.nodeId, first.nodeId);
      assert.equal((await loadIdentity(paths)).nodeId, second.nodeId);
      const p = await loadProfile(paths);
      assert.equal(p.name, "alice");
      assert.deepEqual(p.skills, ["rust"]);
      assert.equal(p.operator, undefined, "the operator binding named the old node ID");
    } finally {
      await rm(paths.home, { recursive: true, force: true });
    }
  });

  test("init rejects an invalid name before writing anything", async () => {
    const paths = await tempHome();
    try {
      await assert.rejects(initIdentity(paths, { name: "x".repeat(65) }), isAtlas("ERR_USAGE", /64 bytes/));
      await assert.rejects(loadIdentity(paths), isAtlas("ERR_NO_IDENTITY"));
    } finally {
      await rm(paths.home, { recursive: true, force: true });
    }
  });

  test("loading a home without an identity names atlas id init", async () => {
    const paths = await tempHome();
    try {
      await assert.rejects(
        loadIdentity(paths),
        isAtlas("ERR_NO_IDENTITY", new RegExp(`^no identity in .+: run \`atlas id init\` first$`)),
      );
    } finally {
      await rm(paths.home, { recursive: true, force: true });
    }
  });

  test("load refuses a key readable by group/others, naming the chmod fix", async () => {
    const paths = await tempHome();
    try {
      await initIdentity(paths);
      for (const mode of [0o644, 0o640, 0o604, 0o620]) {
        await chmod(paths.keyFile, mode);
        await assert.rejects(loadIdentity(paths), (e: unknown) => {
          isAtlas("ERR_KEY_PERMISSIONS")(e);
          assert.equal(
            (e as Error).message,
            `key file ${paths.keyFile} is accessible by group or others: run \`chmod 600 ${paths.keyFile}\``,
          );
          return true;
        });
      }
      await chmod(paths.keyFile, 0o400);
      await loadIdentity(paths);
    } finally {
      await rm(paths.home, { recursive: true, force: true });
    }
  });

  test("load reports a malformed key file in one line", async () => {
    const paths = await tempHome();
    try {
      await initIdentity(paths);
      await writeFile(paths.keyFile, "not a key\n", { mode: 0o600 });
      await assert.rejects(loadIdentity(paths), (e: unknown) => {
        isAtlas("ERR_IO", /^key file .+ is malformed: /)(e);
        assert.ok(!(e as Error).message.includes("\n"));
        return true;
      });
    } finally {
      await rm(paths.home, { recursive: true, force: true });
    }
  });
});

describe("profile", () => {
  test("names are 1 to 64 bytes without control characters and bios at most 256 bytes", () => {
    assert.equal(validateName("  alice  "), "alice");
    assert.equal(validateName("x".repeat(64)), "x".repeat(64));
    assert.throws(() => validateName("x".repeat(65)), isAtlas("ERR_USAGE", /64 bytes/));
    assert.throws(() => validateName("é".repeat(33)), isAtlas("ERR_USAGE", /66 bytes/)); // bytes, not chars
    assert.throws(() => validateName(""), isAtlas("ERR_USAGE", /empty/));
    assert.throws(() => validateName("a\x1b[31mb"), isAtlas("ERR_USAGE", /control/));
    assert.equal(validateBio(""), "");
    assert.equal(validateBio("b".repeat(256)), "b".repeat(256));
    assert.throws(() => validateBio("b".repeat(257)), isAtlas("ERR_USAGE", /256 bytes/));
  });

  test("skills are lowercased, at most 32 bytes, of letters, digits, dots, dashes and underscores", () => {
    assert.equal(normalizeSkill("  Rust "), "rust");
    assert.equal(normalizeSkill("web-3.0_x"), "web-3.0_x");
    assert.equal(normalizeSkill("a".repeat(32)), "a".repeat(32));
    assert.throws(() => normalizeSkill("a".repeat(33)), isAtlas("ERR_USAGE", /32 bytes/));
    assert.throws(() => normalizeSkill(""), isAtlas("ERR_USAGE", /empty/));
    assert.throws(() => normalizeSkill("-rust"), isAtlas("ERR_USAGE", /invalid skill/));
    assert.throws(() => normalizeSkill("two words"), isAtlas("ERR_USAGE", /invalid skill/));
    assert.throws(() => normalizeSkill("café"), isAtlas("ERR_USAGE", /invalid skill/));
  });

  test("skills are added once each, up to 32, and removed case-insensitively without mutating the input", () => {
    let p: Profile = { name: "a", bio: "", skills: [] };
    p = addSkill(p, "Rust");
    p = addSkill(p, "rust");
    p = addSkill(p, "go");
    assert.deepEqual(p.skills, ["rust", "go"]);
    const before = p;
    p = removeSkill(p, "RUST");
    assert.deepEqual(p.skills, ["go"]);
    assert.deepEqual(before.skills, ["rust", "go"], "inputs are not mutated");
    assert.throws(() => removeSkill(p, "rust"), isAtlas("ERR_USAGE", /no skill/));
    for (let i = 0; i < 31; i++) p = addSkill(p, `s${i}`);
    assert.equal(p.skills.length, 32);
    assert.throws(() => addSkill(p, "one-more"), isAtlas("ERR_USAGE", /too many skills/));
    assert.equal(addSkill(p, "go").skills.length, 32, "re-adding an existing skill at the limit is fine");
  });

  test("a profile survives a save and load, and a missing file gives the defaults", async () => {
    const paths = await tempHome();
    try {
      assert.deepEqual(await loadProfile(paths), { name: "", bio: "", skills: [] });
      const p: Profile = {
        name: 'Alice\'s agent "α"',
        bio: "does things",
        skills: ["rust", "ml"],
        wallet: "0x" + "ab".repeat(20),
        operator: {
          fid: 12345,
          username: "alice",
          custody_address: "0x" + "cd".repeat(20),
          message: "example.com wants you to sign in\n\nURI: https://example.com\nRequest ID: atlas_x",
          signature: "0x" + "ef".repeat(65),
        },
      };
      await saveProfile(paths, p);
      assert.deepEqual(await loadProfile(paths), p);
    } finally {
      await rm(paths.home, { recursive: true, force: true });
    }
  });

  test("a bad profile file is ERR_CONFIG naming the key and the file", async () => {
    const paths = await tempHome();
    try {
      const cases: [string, RegExp][] = [
        ['name = "a"\ncolour = "red"\n', /colour/],
        ["name = 5\n", /invalid name in .*profile\.toml: expected a string/],
        ['skills = "rust"\n', /skills/],
        ["skills = [1]\n", /skills/],
        ['skills = ["bad skill"]\n', /invalid skills in .*profile\.toml: invalid skill/],
        [`name = "${"x".repeat(65)}"\n`, /name.*64 bytes/],
        ['[operator]\nfid = "1"\nusername="a"\ncustody_address="b"\nmessage="c"\nsignature="d"\n', /operator\.fid/],
        ['[operator]\nfid = 1\nusername="a"\n', /operator\.custody_address.*missing/],
        [
          '[operator]\nfid = 1\nusername="a"\ncustody_address="b"\nmessage="c"\nsignature="d"\nextra=1\n',
          /operator\.extra/,
        ],
        ["name = \n", /invalid TOML in .*profile\.toml/],
      ];
      await saveProfile(paths, { name: "x", bio: "", skills: [] }); // creates state dir
      for (const [text, re] of cases) {
        await writeFile(paths.profileFile, text);
        await assert.rejects(loadProfile(paths), (e: unknown) => {
          isAtlas("ERR_CONFIG", re)(e);
          assert.ok((e as Error).message.includes(paths.profileFile), (e as Error).message);
          assert.ok(!(e as Error).message.includes("\n"));
          return true;
        }, text);
      }
    } finally {
      await rm(paths.home, { recursive: true, force: true });
    }
  });

  test("saveProfile refuses values that could not be loaded back", async () => {
    const paths = await tempHome();
    try {
      await assert.rejects(saveProfile(paths, { name: "n", bio: "b".repeat(300), skills: [] }), isAtlas("ERR_USAGE"));
      await assert.rejects(saveProfile(paths, { name: "n", bio: "", skills: ["Not Ok"] }), isAtlas("ERR_USAGE"));
      assert.deepEqual(await loadProfile(paths), { name: "", bio: "", skills: [] });
    } finally {
      await rm(paths.home, { recursive: true, force: true });
    }
  });
});
