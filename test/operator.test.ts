/**
 * Farcaster operator binding verification (docs/protocol.md#operator-binding): EIP-191 recovery, SIWE parsing/building,
 * the offline checks, and the hub step against a local fake hub. No test reaches the internet.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { privateKeyToAccount } from "viem/accounts";
import { recoverMessageAddress } from "viem";
import { AtlasError } from "../src/errors.ts";
import { type Config, defaultConfig } from "../src/config/defaults.ts";
import { checksumAddress, recoverPersonalSignAddress } from "../src/operator/eip191.ts";
import { buildBindingMessage, parseBinding, tryParseBinding } from "../src/operator/siwe.ts";
import { type HubClient, verifyBindingOffline, verifyOperator } from "../src/operator/verify.ts";
import { DEFAULT_HUB_URL, HttpHubClient, hubUrlFor } from "../src/operator/hub.ts";
import {
  DAY_MS,
  type FakeHub,
  makeBinding,
  OTHER_ADDRESS,
  OTHER_PRIVATE_KEY,
  personalSign,
  startFakeHub,
  TEST_ADDRESS,
  TEST_PRIVATE_KEY,
} from "./helpers/farcaster.ts";
import { pause } from "./helpers/wait.ts";

const NODE = "atlas_" + "ab".repeat(32);
const OTHER_NODE = "atlas_" + "cd".repeat(32);
const FID = 12345;
const NOW = Date.parse("2025-06-01T00:00:00Z") / 1000;

// Known-answer vector: "hello atlas" personal_sign'ed with Hardhat account #0 (RFC 6979, low-s).
// Computed once with noble and cross-checked against viem's independent implementation.
const HELLO = "hello atlas";
const HELLO_SIG =
  "0xa5f2a060069c6b7eca44725a78c07ef70bb92c378809d7bb28cf6ae9498166cd36b78ab3c05a7e7b895787c93a7e7ed50fc08b3a0d02c90a3bc77efe21e18b2b1b";

// Known-answer binding: makeBinding({nodeId: NODE, fid: FID}) with its defaults.
const BINDING_TEXT = [
  "atlas.example wants you to sign in with your Ethereum account:",
  "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
  "",
  "Farcaster Auth",
  "",
  "URI: https://atlas.example/bind",
  "Version: 1",
  "Chain ID: 10",
  "Nonce: atlasTestNonce01",
  "Issued At: 2025-01-01T00:00:00.000Z",
  "Expiration Time: 2026-01-01T00:00:00.000Z",
  `Request ID: ${NODE}`,
  "Resources:",
  `- farcaster://fid/${FID}`,
].join("\n");
const BINDING_SIG =
  "0x3882e372ab88447962b3bd60ca3f2483fb395075be2c8315de3930cfe06e4b8a02f432b9c778b74a6b16294b8d3490fa61c6b291f12bb4047a4bfea5014c33481b";

function cfg(verify: "hub" | "signature"): Config {
  const c = defaultConfig();
  c.farcaster.verify = verify;
  return c;
}

const hubs: FakeHub[] = [];
async function fakeHub(
  owners: [number, string | string[]][] = [[FID, TEST_ADDRESS]],
  usernames: [number, string][] = [[FID, "alice"]],
) {
  const h = await startFakeHub({ owners: new Map(owners), usernames: new Map(usernames) });
  hubs.push(h);
  return h;
}
after(async () => {
  await Promise.all(hubs.map((h) => h.close()));
});

describe("EIP-191 recovery (eip191.ts)", () => {
  test("a fixed message and signature recover the known address", async () => {
    assert.equal(personalSign(HELLO), HELLO_SIG);
    assert.equal(recoverPersonalSignAddress(HELLO, HELLO_SIG), TEST_ADDRESS);
    // Independent oracle: viem signs and recovers the same.
    const acct = privateKeyToAccount(("0x" + Buffer.from(TEST_PRIVATE_KEY).toString("hex")) as `0x${string}`);
    assert.equal(await acct.signMessage({ message: HELLO }), HELLO_SIG);
    assert.equal(await recoverMessageAddress({ message: HELLO, signature: HELLO_SIG }), TEST_ADDRESS);
  });

  test("signatures with v 0 or 1 and without 0x verify, and unicode messages are hashed by byte length", async () => {
    const v01 = HELLO_SIG.slice(0, -2) + "00";
    assert.equal(recoverPersonalSignAddress(HELLO, v01), TEST_ADDRESS);
    assert.equal(recoverPersonalSignAddress(HELLO, HELLO_SIG.slice(2)), TEST_ADDRESS);
    const uni = "héllo ✓ atlas";
    const sig = personalSign(uni);
    assert.equal(recoverPersonalSignAddress(uni, sig), TEST_ADDRESS);
    assert.equal(await recoverMessageAddress({ message: uni, signature: sig as `0x${string}` }), TEST_ADDRESS);
  });

  test("another message or another key recovers another address", () => {
    assert.notEqual(recoverPersonalSignAddress("hello atlaS", HELLO_SIG), TEST_ADDRESS);
    assert.equal(recoverPersonalSignAddress(HELLO, personalSign(HELLO, OTHER_PRIVATE_KEY)), OTHER_ADDRESS);
  });

  test("malformed signatures throw AtlasError", () => {
    const bad = [
      "",
      "0x1234",
      HELLO_SIG + "00", // 66 bytes
      HELLO_SIG.slice(0, -2) + "1d", // v = 29
      HELLO_SIG.slice(0, -2) + "zz",
      "0x" + "00".repeat(64) + "1b", // r = s = 0
      "0x" + "ff".repeat(64) + "1b", // r, s ≥ n
    ];
    for (const s of bad) {
      assert.throws(
        () => recoverPersonalSignAddress(HELLO, s),
        (e: unknown) => e instanceof AtlasError && /malformed signature/.test(e.message),
        s,
      );
    }
  });

  test("EIP-55 checksum vectors", () => {
    for (
      const a of [
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "0x52908400098527886E0F7030069857D2E4169EE7", // all caps
        "0xde709f2102306220921060314715629080e2fb77", // all lower
        "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
        "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
        "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
      ]
    ) {
      assert.equal(checksumAddress(a.toLowerCase()), a);
      assert.equal(checksumAddress("0x" + a.slice(2).toUpperCase()), a);
    }
    assert.throws(() => checksumAddress("0x1234"), AtlasError);
  });
});

describe("SIWE binding message (siwe.ts)", () => {
  test("the built binding message and its signature match the known answer", () => {
    const b = makeBinding({ nodeId: NODE, fid: FID });
    assert.equal(b.message, BINDING_TEXT);
    assert.equal(b.signature, BINDING_SIG);
    assert.equal(recoverPersonalSignAddress(BINDING_TEXT, BINDING_SIG), TEST_ADDRESS);
  });

  test("the binding message follows Sign In With Farcaster: chain 10, the node ID as Request ID, the fid as resource", () => {
    const text = buildBindingMessage({
      domain: "atlas.example",
      uri: "https://atlas.example/bind",
      address: TEST_ADDRESS.toLowerCase(),
      nodeId: NODE,
      fid: FID,
      nonce: "atlasTestNonce01",
      issuedAt: new Date("2025-01-01T00:00:00Z"),
      expirationTime: new Date("2026-01-01T00:00:00Z"),
    });
    assert.equal(text, BINDING_TEXT); // address checksummed by createSiweMessage
    const withNb = buildBindingMessage({
      domain: "atlas.example",
      uri: "https://atlas.example/bind",
      address: TEST_ADDRESS,
      nodeId: NODE,
      fid: FID,
      nonce: "atlasTestNonce01",
      issuedAt: new Date("2025-01-01T00:00:00Z"),
      expirationTime: new Date("2026-01-01T00:00:00Z"),
      notBefore: new Date("2025-01-02T00:00:00Z"),
    });
    assert.match(
      withNb,
      /\nExpiration Time: 2026-01-01T00:00:00.000Z\nNot Before: 2025-01-02T00:00:00.000Z\nRequest ID: /,
    );
  });

  test("buildBindingMessage rejects bad fields with ERR_USAGE", () => {
    const base = {
      domain: "atlas.example",
      uri: "https://atlas.example/bind",
      address: TEST_ADDRESS,
      nodeId: NODE,
      fid: FID,
      nonce: "atlasTestNonce01",
      issuedAt: new Date("2025-01-01T00:00:00Z"),
      expirationTime: new Date("2026-01-01T00:00:00Z"),
    };
    const isUsage = (re: RegExp) => (e: unknown) =>
      e instanceof AtlasError && e.code === "ERR_USAGE" && re.test(e.message);
    assert.throws(() => buildBindingMessage({ ...base, nonce: "short" }), isUsage(/nonce/i));
    assert.throws(() => buildBindingMessage({ ...base, nonce: "not-alpha-numeric" }), isUsage(/nonce/i));
    assert.throws(() => buildBindingMessage({ ...base, fid: 0 }), isUsage(/fid/));
    assert.throws(() => buildBindingMessage({ ...base, address: "0x1234" }), isUsage(/address/i));
    assert.throws(() => buildBindingMessage({ ...base, nodeId: "two words" }), isUsage(/node ID/));
    assert.throws(() => buildBindingMessage({ ...base, expirationTime: new Date(NaN) }), isUsage(/expirationTime/));
  });

  test("parseBinding returns every field", () => {
    const p = parseBinding(BINDING_TEXT);
    assert.equal(p.domain, "atlas.example");
    assert.equal(p.address, TEST_ADDRESS);
    assert.equal(p.statement, "Farcaster Auth");
    assert.equal(p.uri, "https://atlas.example/bind");
    assert.equal(p.version, "1");
    assert.equal(p.chainId, 10);
    assert.equal(p.nonce, "atlasTestNonce01");
    assert.equal(p.issuedAt.toISOString(), "2025-01-01T00:00:00.000Z");
    assert.equal(p.expirationTime?.toISOString(), "2026-01-01T00:00:00.000Z");
    assert.equal(p.notBefore, undefined);
    assert.equal(p.requestId, NODE);
    assert.deepEqual(p.resources, [`farcaster://fid/${FID}`]);
  });

  test("parses a message without statement and with dates lacking milliseconds (siwe-library style)", () => {
    const text = BINDING_TEXT.replace("Farcaster Auth\n\n", "\n").replace(".000Z", "Z");
    const r = tryParseBinding(text);
    assert.ok(r.ok, r.ok ? "" : r.reason);
    assert.equal(r.value.statement, undefined);
    assert.equal(r.value.issuedAt.toISOString(), "2025-01-01T00:00:00.000Z");
  });

  test("a malformed binding message is refused with ERR_USAGE giving the precise reason", () => {
    const cases: [string, RegExp][] = [
      ["", /empty/],
      ["hello", /wants you to sign in/],
      [BINDING_TEXT.replace("Nonce: atlasTestNonce01", "Nonce: bad-nonce!"), /Nonce/],
      [BINDING_TEXT.replace("Version: 1", "Version: 2"), /Version/],
      [BINDING_TEXT.replace("Issued At: 2025-01-01T00:00:00.000Z", "Issued At: yesterday"), /Issued At/],
      [
        BINDING_TEXT.replace("Expiration Time: 2026-01-01T00:00:00.000Z", "Expiration Time: 2026-13-01T00:00:00Z"),
        /Expiration Time/,
      ],
      [BINDING_TEXT + "\nRequest ID: " + OTHER_NODE, /Request ID appears twice/],
      [BINDING_TEXT + "\nextra text", /unexpected line/],
      [
        BINDING_TEXT.replace(`Request ID: ${NODE}\n`, "").replace(
          "Resources:",
          `Resources:\n- x:y\nRequest ID: ${NODE}`,
        ),
        /unexpected line|out of order/,
      ],
      [BINDING_TEXT.replace("\n", "\r\n"), /carriage return/],
      [BINDING_TEXT.replace("Farcaster Auth", "Farcaster\nAuth"), /statement/],
      ["x".repeat(9000), /longer than/],
    ];
    for (const [text, re] of cases) {
      const r = tryParseBinding(text);
      assert.ok(!r.ok, `should fail: ${JSON.stringify(text.slice(0, 40))}`);
      assert.match(r.reason, re);
      assert.throws(
        () => parseBinding(text),
        (e: unknown) =>
          e instanceof AtlasError && e.code === "ERR_USAGE" && e.message === `malformed SIWE message: ${r.reason}`,
      );
    }
    assert.equal(tryParseBinding(42).ok, false);
  });
});

describe("offline verification (verifyBindingOffline)", () => {
  const reason = (r: ReturnType<typeof verifyBindingOffline>) => (r.ok ? "ok" : r.reason);

  test("a valid binding verifies, with its expiry", () => {
    const r = verifyBindingOffline(makeBinding({ nodeId: NODE, fid: FID }), NODE, NOW);
    assert.deepEqual(r, { ok: true, fid: FID, expiresAt: Date.parse("2026-01-01T00:00:00Z") / 1000 });
  });

  test("custody address matches case-insensitively", () => {
    const b = makeBinding({ nodeId: NODE, fid: FID });
    assert.equal(verifyBindingOffline({ ...b, custody_address: TEST_ADDRESS.toLowerCase() }, NODE, NOW).ok, true);
  });

  test("binding for another node ID", () => {
    assert.equal(
      reason(verifyBindingOffline(makeBinding({ nodeId: OTHER_NODE, fid: FID }), NODE, NOW)),
      `binding is for another node (request ID ${OTHER_NODE})`,
    );
  });

  test("tampered message (one character changed after signing)", () => {
    const b = makeBinding({ nodeId: NODE, fid: FID, tamper: (m) => m.replace("atlasTestNonce01", "atlasTestNonce02") });
    assert.equal(
      reason(verifyBindingOffline(b, NODE, NOW)),
      `signature was not made by the custody address ${TEST_ADDRESS}`,
    );
    const b2 = makeBinding({ nodeId: NODE, fid: FID, tamper: (m) => m.replace("Farcaster Auth", "Farcaster Auti") });
    assert.equal(
      reason(verifyBindingOffline(b2, NODE, NOW)),
      `signature was not made by the custody address ${TEST_ADDRESS}`,
    );
  });

  test("expired binding, at and after its Expiration Time", () => {
    const b = makeBinding({ nodeId: NODE, fid: FID });
    const exp = Date.parse("2026-01-01T00:00:00Z") / 1000;
    assert.equal(verifyBindingOffline(b, NODE, exp - 1).ok, true);
    assert.equal(reason(verifyBindingOffline(b, NODE, exp)), "binding expired at 2026-01-01T00:00:00.000Z");
    assert.equal(reason(verifyBindingOffline(b, NODE, exp + 86400)), "binding expired at 2026-01-01T00:00:00.000Z");
  });

  test("not yet valid (Not Before in the future)", () => {
    const b = makeBinding({ nodeId: NODE, fid: FID, notBefore: new Date("2025-07-01T00:00:00Z") });
    assert.equal(reason(verifyBindingOffline(b, NODE, NOW)), "binding not valid before 2025-07-01T00:00:00.000Z");
    assert.equal(verifyBindingOffline(b, NODE, Date.parse("2025-07-01T00:00:00Z") / 1000).ok, true);
  });

  test("signature from another key", () => {
    const b = makeBinding({ nodeId: NODE, fid: FID, signerKey: OTHER_PRIVATE_KEY, custodyAddress: TEST_ADDRESS });
    assert.equal(
      reason(verifyBindingOffline(b, NODE, NOW)),
      `signature was not made by the custody address ${TEST_ADDRESS}`,
    );
    // …and claiming the other key's address as custody while the message names the test address.
    const b2 = makeBinding({ nodeId: NODE, fid: FID, signerKey: OTHER_PRIVATE_KEY, messageAddress: TEST_ADDRESS });
    assert.equal(
      reason(verifyBindingOffline(b2, NODE, NOW)),
      `message names address ${TEST_ADDRESS}, not the custody address ${OTHER_ADDRESS}`,
    );
  });

  test("a binding whose resources name another fid is refused", () => {
    const b = makeBinding({ nodeId: NODE, fid: FID, messageFid: 999 });
    assert.equal(reason(verifyBindingOffline(b, NODE, NOW)), `message does not name fid ${FID}`);
  });

  test("malformed message", () => {
    const b = makeBinding({ nodeId: NODE, fid: FID, message: "I, the custody address, approve this node." });
    assert.match(reason(verifyBindingOffline(b, NODE, NOW)), /^malformed SIWE message: /);
    const b2 = makeBinding({ nodeId: NODE, fid: FID, tamper: (m) => m.replace("Version: 1\n", "") });
    assert.match(reason(verifyBindingOffline(b2, NODE, NOW)), /^malformed SIWE message: /);
  });

  test("a binding with a malformed signature, fid, username or custody address is refused", () => {
    const b = makeBinding({ nodeId: NODE, fid: FID });
    assert.match(reason(verifyBindingOffline({ ...b, signature: "0x1234" }, NODE, NOW)), /^malformed signature/);
    assert.match(reason(verifyBindingOffline({ ...b, fid: 0 }, NODE, NOW)), /^fid must be a positive integer/);
    assert.match(reason(verifyBindingOffline({ ...b, fid: 1.5 }, NODE, NOW)), /^fid must be a positive integer/);
    assert.match(
      reason(verifyBindingOffline({ ...b, username: "@alice" }, NODE, NOW)),
      /^username must be given without '@'/,
    );
    assert.match(
      reason(verifyBindingOffline({ ...b, custody_address: "0xnope" }, NODE, NOW)),
      /^custody address is not an Ethereum address/,
    );
  });

  test("never throws on garbage input", () => {
    for (
      const junk of [null, undefined, 42, "x", {}, { fid: "1", username: 3 }, {
        ...makeBinding({ nodeId: NODE, fid: FID }),
        message: 7,
      }]
    ) {
      const r = verifyBindingOffline(junk as never, NODE, NOW);
      assert.equal(r.ok, false);
    }
  });
});

describe("verifyOperator", () => {
  const binding = () => makeBinding({ nodeId: NODE, fid: FID, username: "alice" });

  test('verify = "signature": offline checks suffice, username as claimed, no hub asked', async () => {
    const hub = await fakeHub([], []);
    const client = new HttpHubClient(hub.url);
    const v = await verifyOperator(binding(), NODE, cfg("signature"), client, NOW);
    assert.deepEqual(v, { status: "verified", fid: FID, username: "alice" });
    assert.equal(hub.requests, 0);
    assert.deepEqual(await verifyOperator(binding(), NODE, cfg("signature"), null, NOW), {
      status: "verified",
      fid: FID,
      username: "alice",
    });
  });

  test('verify = "hub": a valid binding verifies against the fake hub', async () => {
    const hub = await fakeHub();
    const v = await verifyOperator(binding(), NODE, cfg("hub"), new HttpHubClient(hub.url), NOW);
    assert.deepEqual(v, { status: "verified", fid: FID, username: "alice" });
    assert.equal(hub.requests, 2);
    assert.match(hub.log[0]!, /^\/v1\/onChainEventsByFid\?fid=12345&event_type=EVENT_TYPE_ID_REGISTER$/);
    assert.match(hub.log[1]!, /^\/v1\/userDataByFid\?fid=12345&user_data_type=USER_DATA_TYPE_USERNAME$/);
  });

  test("the hub's username replaces the claimed one", async () => {
    const hub = await fakeHub([[FID, TEST_ADDRESS]], [[FID, "alice-renamed"]]);
    const v = await verifyOperator(binding(), NODE, cfg("hub"), new HttpHubClient(hub.url), NOW);
    assert.deepEqual(v, { status: "verified", fid: FID, username: "alice-renamed" });
  });

  test("a fid with no username on the hub verifies with an empty username (the claim is not trusted)", async () => {
    const hub = await fakeHub([[FID, TEST_ADDRESS]], []);
    const v = await verifyOperator(binding(), NODE, cfg("hub"), new HttpHubClient(hub.url), NOW);
    assert.deepEqual(v, { status: "verified", fid: FID, username: "" });
  });

  test("a hub naming another custody address for the fid leaves the operator unconfirmed with the reason", async () => {
    const hub = await fakeHub([[FID, OTHER_ADDRESS]]);
    const v = await verifyOperator(binding(), NODE, cfg("hub"), new HttpHubClient(hub.url), NOW);
    assert.deepEqual(v, {
      status: "unconfirmed",
      fid: FID,
      username: "alice",
      reason: `hub says fid ${FID} is not owned by ${TEST_ADDRESS}`,
    });
  });

  test("custody transferred away leaves the operator unconfirmed and custody transferred in verifies", async () => {
    const away = await fakeHub([[FID, [TEST_ADDRESS, OTHER_ADDRESS]]]);
    const v1 = await verifyOperator(binding(), NODE, cfg("hub"), new HttpHubClient(away.url), NOW);
    assert.equal(v1.status, "unconfirmed");
    assert.equal(v1.status === "unconfirmed" && v1.reason, `hub says fid ${FID} is not owned by ${TEST_ADDRESS}`);
    const into = await fakeHub([[FID, [OTHER_ADDRESS, TEST_ADDRESS]]]);
    const v2 = await verifyOperator(binding(), NODE, cfg("hub"), new HttpHubClient(into.url), NOW);
    assert.deepEqual(v2, { status: "verified", fid: FID, username: "alice" });
  });

  test("a fid unknown to the hub leaves the operator unconfirmed", async () => {
    const hub = await fakeHub([], []);
    const v = await verifyOperator(binding(), NODE, cfg("hub"), new HttpHubClient(hub.url), NOW);
    assert.equal(v.status === "unconfirmed" && v.reason, `hub says fid ${FID} is not owned by ${TEST_ADDRESS}`);
  });

  test('hub down → unconfirmed "hub unreachable: …" (fail closed), and status() says so', async () => {
    const hub = await fakeHub();
    hub.down = "reset";
    const client = new HttpHubClient(hub.url);
    assert.deepEqual(client.status(), { reachable: null });
    const v = await verifyOperator(binding(), NODE, cfg("hub"), client, NOW);
    assert.equal(v.status, "unconfirmed");
    assert.match(
      v.status === "unconfirmed" ? v.reason : "",
      /^hub unreachable: cannot reach http:\/\/127\.0\.0\.1:\d+/,
    );
    const st = client.status();
    assert.equal(st.reachable, false);
    assert.match(st.lastError ?? "", /cannot reach/);
    assert.equal(typeof st.lastCheckedAt, "number");

    hub.down = "503";
    const v503 = await verifyOperator(binding(), NODE, cfg("hub"), client, NOW);
    assert.match(
      v503.status === "unconfirmed" ? v503.reason : "",
      /^hub unreachable: HTTP 503 from http:\/\/127\.0\.0\.1:\d+\/v1\/onChainEventsByFid: Service Unavailable$/,
    );

    // Failures are not cached: once the hub is back, the same client verifies.
    hub.down = false;
    assert.deepEqual(await verifyOperator(binding(), NODE, cfg("hub"), client, NOW), {
      status: "verified",
      fid: FID,
      username: "alice",
    });
    assert.equal(client.status().reachable, true);
    assert.equal(client.status().lastError, undefined);
  });

  test("a hub that never answers leaves the operator unconfirmed after the timeout", async () => {
    const hub = await fakeHub();
    hub.down = "hang";
    const client = new HttpHubClient(hub.url, { timeoutMs: 200 });
    const t0 = Date.now();
    const v = await verifyOperator(binding(), NODE, cfg("hub"), client, NOW);
    assert.match(
      v.status === "unconfirmed" ? v.reason : "",
      /^hub unreachable: no answer from http:\/\/127\.0\.0\.1:\d+ within 200 ms$/,
    );
    assert.ok(Date.now() - t0 < 3000);
  });

  test("a hub URL where nothing listens leaves the operator unconfirmed", async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer();
      s.listen(0, "127.0.0.1", () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const v = await verifyOperator(binding(), NODE, cfg("hub"), new HttpHubClient(`http://127.0.0.1:${port}`), NOW);
    assert.match(
      v.status === "unconfirmed" ? v.reason : "",
      /^hub unreachable: cannot reach http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED$/,
    );
  });

  test("a URL that is not a hub (bare 404 page) is an error, not a 'no'", async () => {
    const hub = await fakeHub();
    const v = await verifyOperator(binding(), NODE, cfg("hub"), new HttpHubClient(hub.url + "/not-a-hub"), NOW);
    assert.match(v.status === "unconfirmed" ? v.reason : "", /^hub unreachable: HTTP 404 from .*: Not Found$/);
  });

  test("a binding that fails offline is refused without asking the hub", async () => {
    const hub = await fakeHub();
    const v = await verifyOperator(
      makeBinding({ nodeId: OTHER_NODE, fid: FID }),
      NODE,
      cfg("hub"),
      new HttpHubClient(hub.url),
      NOW,
    );
    assert.deepEqual(v, {
      status: "unconfirmed",
      fid: FID,
      username: "alice",
      reason: `binding is for another node (request ID ${OTHER_NODE})`,
    });
    assert.equal(hub.requests, 0);
  });

  test("hub mode without a hub client leaves the operator unconfirmed", async () => {
    const v = await verifyOperator(binding(), NODE, cfg("hub"), null, NOW);
    assert.equal(v.status, "unconfirmed");
  });

  test("a HubClient that throws or misbehaves never makes verifyOperator throw", async () => {
    const throwing: HubClient = {
      custodyOwnsFid: () => Promise.reject(new Error("boom")),
      username: () => Promise.reject(new Error("boom")),
    };
    assert.deepEqual(await verifyOperator(binding(), NODE, cfg("hub"), throwing, NOW), {
      status: "unconfirmed",
      fid: FID,
      username: "alice",
      reason: "hub unreachable: boom",
    });
    const nameFails: HubClient = {
      custodyOwnsFid: () => Promise.resolve(true),
      username: () => Promise.reject(new Error("later boom")),
    };
    const v = await verifyOperator(binding(), NODE, cfg("hub"), nameFails, NOW);
    assert.equal(v.status === "unconfirmed" && v.reason, "hub unreachable: later boom");
    const v2 = await verifyOperator(null as never, NODE, cfg("hub"), throwing, NOW);
    assert.equal(v2.status, "unconfirmed");
  });

  test("a second verification within cache_ttl does not ask the hub again", async () => {
    const hub = await fakeHub();
    let clock = Date.parse("2025-06-01T00:00:00Z");
    const client = new HttpHubClient(hub.url, { cacheTtlSecs: 3600, now: () => clock });
    const c = cfg("hub");
    assert.equal((await verifyOperator(binding(), NODE, c, client, NOW)).status, "verified");
    assert.equal(hub.requests, 2);
    assert.equal((await verifyOperator(binding(), NODE, c, client, NOW)).status, "verified");
    assert.equal(hub.requests, 2, "second verification answered from the cache");
    clock += 3599_000;
    await verifyOperator(binding(), NODE, c, client, NOW);
    assert.equal(hub.requests, 2, "still fresh just before the TTL");
    clock += 2_000;
    assert.equal((await verifyOperator(binding(), NODE, c, client, NOW)).status, "verified");
    assert.equal(hub.requests, 4, "re-asked after the TTL");
    assert.equal(client.status().lastCheckedAt, Math.floor(clock / 1000));
  });

  test("cache keeps negative answers too, and concurrent questions share one request", async () => {
    const hub = await fakeHub([[FID, OTHER_ADDRESS]], []);
    const client = new HttpHubClient(hub.url);
    const [a, b, c] = await Promise.all([
      client.custodyOf(FID),
      client.custodyOf(FID),
      client.custodyOwnsFid(FID, TEST_ADDRESS),
    ]);
    assert.equal(a, OTHER_ADDRESS);
    assert.equal(b, OTHER_ADDRESS);
    assert.equal(c, false);
    assert.equal(hub.requests, 1);
    assert.equal(await client.username(FID), null);
    assert.equal(await client.username(FID), null);
    assert.equal(hub.requests, 2);
  });
});

describe("HttpHubClient", () => {
  test("default hub URL and config fallback", () => {
    assert.match(DEFAULT_HUB_URL, /^https:\/\//);
    assert.equal(hubUrlFor(""), DEFAULT_HUB_URL);
    assert.equal(hubUrlFor("  "), DEFAULT_HUB_URL);
    assert.equal(hubUrlFor("http://127.0.0.1:3381"), "http://127.0.0.1:3381");
    assert.equal(new HttpHubClient("http://127.0.0.1:3381/").baseUrl, "http://127.0.0.1:3381");
  });

  test("rejects a hub URL that is not http(s)", () => {
    assert.throws(
      () => new HttpHubClient("ftp://hub"),
      (e: unknown) => e instanceof AtlasError && e.code === "ERR_CONFIG",
    );
    assert.throws(
      () => new HttpHubClient("not a url"),
      (e: unknown) => e instanceof AtlasError && e.code === "ERR_CONFIG",
    );
  });

  test("understands Snapchain's JSON shapes (enum names, errors) through an injected fetch", async () => {
    const seen: string[] = [];
    const fakeFetch: typeof fetch = (input) => {
      const url = new URL(String(input));
      seen.push(url.pathname + url.search);
      if (url.pathname === "/v1/onChainEventsByFid") {
        const page = url.searchParams.get("pageToken");
        const ev = (block: number, to: string, eventType: string) => ({
          type: "EVENT_TYPE_ID_REGISTER",
          blockNumber: block,
          logIndex: 0,
          fid: FID,
          idRegisterEventBody: { to, eventType, from: "0x", recoveryAddress: "0x" + "00".repeat(20) },
        });
        const body = page
          ? {
            events: [
              ev(300, TEST_ADDRESS.toLowerCase(), "Transfer"),
              ev(400, "0x" + "11".repeat(20), "ChangeRecovery"),
            ],
          }
          : { events: [ev(100, OTHER_ADDRESS.toLowerCase(), "Register")], nextPageToken: "AQID+/==" };
        return Promise.resolve(
          new Response(JSON.stringify(body), { status: 200, headers: { "content-type": "application/json" } }),
        );
      }
      return Promise.resolve(
        new Response(
          JSON.stringify({
            error: "Failed to get user data",
            errorDetail: 'status: NotFound, message: "user data not found"',
          }),
          {
            status: 400,
            headers: { "content-type": "application/json" },
          },
        ),
      );
    };
    const client = new HttpHubClient("https://snap.example:3381", { fetch: fakeFetch });
    assert.equal(await client.custodyOf(FID), TEST_ADDRESS);
    assert.equal(await client.username(FID), null);
    assert.deepEqual(seen, [
      "/v1/onChainEventsByFid?fid=12345&event_type=EVENT_TYPE_ID_REGISTER",
      "/v1/onChainEventsByFid?fid=12345&event_type=EVENT_TYPE_ID_REGISTER&pageToken=AQID%2B%2F%3D%3D",
      "/v1/userDataByFid?fid=12345&user_data_type=USER_DATA_TYPE_USERNAME",
    ]);
  });

  test("a hub answering garbage is an error", async () => {
    const client = new HttpHubClient("https://hub.example", {
      fetch: () => Promise.resolve(new Response("<html>hi</html>", { status: 200 })),
    });
    await assert.rejects(
      client.custodyOf(FID),
      (e: unknown) => e instanceof AtlasError && /did not answer a JSON object/.test(e.message),
    );
    assert.equal(client.status().reachable, false);
  });

  test("cache TTL elapses in real time too (short TTL)", async () => {
    const hub = await fakeHub();
    const client = new HttpHubClient(hub.url, { cacheTtlSecs: 0.2 });
    await client.custodyOf(FID);
    await client.custodyOf(FID);
    assert.equal(hub.requests, 1);
    await pause(250); // the subject: the 0.2 s TTL running out
    await client.custodyOf(FID);
    assert.equal(hub.requests, 2);
  });
});

test("bindings are a year long by default", () => {
  const b = makeBinding({ nodeId: NODE, fid: FID, issuedAt: new Date("2025-03-01T00:00:00Z") });
  const r = verifyBindingOffline(b, NODE, Date.parse("2025-03-02T00:00:00Z") / 1000);
  assert.ok(r.ok);
  assert.equal(r.expiresAt, (Date.parse("2025-03-01T00:00:00Z") + 365 * DAY_MS) / 1000);
});
