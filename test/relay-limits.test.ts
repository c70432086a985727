/** The relay's pipe slots (src/relay/limits.ts): which limit refuses, with which code, and release. */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { defaultConfig } from "../src/config/defaults.ts";
import { addressKey, type PipeOwner, PipeSlots } from "../src/relay/limits.ts";
import { RelayErrorCode } from "../src/wire/messages.ts";

const slots = () => new PipeSlots(defaultConfig().transport);
const owner = (source: string, address: string, target: string): PipeOwner => ({ source, address, target });

/** Reserve if it fits; the refusal code otherwise. */
function take(s: PipeSlots, o: PipeOwner): number | (() => void) {
  return s.refusal(o)?.code ?? s.reserve(o);
}

describe("relay pipe slots", () => {
  test("one address holds relay_pairings_per_ip pipes, whatever its identities and targets", () => {
    const s = slots();
    for (let i = 0; i < 8; i++) assert.equal(typeof take(s, owner(`n${i}`, "192.0.2.1", `t${i % 3}`)), "function");
    assert.deepEqual(s.refusal(owner("n9", "192.0.2.1", "t9")), {
      code: RelayErrorCode.PER_SOURCE_LIMIT,
      reason: "at most 8 pipes per source address",
    });
    assert.equal(s.refusal(owner("n9", "192.0.2.2", "t9")), null);
    assert.equal(s.used, 8);
  });

  test("a target takes relay_pipes_per_target pipes, at most half of them from one address", () => {
    const s = slots();
    for (let i = 0; i < 4; i++) take(s, owner(`a${i}`, "192.0.2.1", "T"));
    assert.equal(s.refusal(owner("a9", "192.0.2.1", "T"))?.reason, "at most 4 of a target's pipes per source address");
    assert.equal(s.refusal(owner("a9", "192.0.2.1", "U")), null, "another target is fine");
    for (let i = 0; i < 4; i++) take(s, owner(`b${i}`, "192.0.2.2", "T"));
    assert.deepEqual(s.refusal(owner("c", "192.0.2.3", "T")), {
      code: RelayErrorCode.TARGET_BUSY,
      reason: "target has 8 pipes already",
    });
  });

  test("a release frees every count once, however often it is called", () => {
    const s = slots();
    const rel = s.reserve(owner("a", "192.0.2.1", "T"));
    for (let i = 0; i < 3; i++) s.reserve(owner("a", "192.0.2.1", "T"));
    assert.equal(s.refusal(owner("a", "192.0.2.1", "T"))?.code, RelayErrorCode.PER_SOURCE_LIMIT);
    rel();
    rel();
    assert.equal(s.used, 3);
    assert.equal(s.refusal(owner("a", "192.0.2.1", "T")), null);
  });

  test("sources are counted by IPv4 address (mapped ones unmapped) and by IPv6 /64", () => {
    assert.equal(addressKey("192.0.2.1"), "192.0.2.1");
    assert.equal(addressKey("::ffff:192.0.2.1"), "192.0.2.1");
    assert.equal(addressKey("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
    assert.equal(addressKey("2001:0db8:0001:0002:ffff:ffff:ffff:ffff"), "2001:db8:1:2::/64");
    assert.equal(addressKey("2001:db8::1"), "2001:db8:0:0::/64");
    assert.equal(addressKey("::1"), "0:0:0:0::/64");
    assert.equal(addressKey("fe80::1%eth0"), "fe80:0:0:0::/64");
    assert.equal(addressKey("64:ff9b::192.0.2.1"), "64:ff9b:0:0::/64");
    assert.equal(addressKey("1:2:3:4:5:6:192.0.2.1"), "1:2:3:4::/64");
  });
});
