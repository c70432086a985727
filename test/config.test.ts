import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse as parseToml } from "smol-toml";
import { isAtlasError } from "../src/errors.ts";
import { type Config, defaultConfig, DEFAULTS } from "../src/config/defaults.ts";
import { type HomePaths, homePaths } from "../src/config/paths.ts";
import { loadConfig } from "../src/config/load.ts";
import { GROUPS, SCHEMA, SECTIONS } from "../src/config/schema.ts";
import {
  formatConfigValue,
  getConfigValue,
  parseConfigValue,
  renderConfig,
  setConfigValue,
} from "../src/config/edit.ts";

async function withHome(fn: (paths: HomePaths) => Promise<void>): Promise<void> {
  const home = await mkdtemp(join(tmpdir(), "atlas-config-"));
  try {
    await fn(homePaths(home));
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

async function writeConfig(paths: HomePaths, text: string): Promise<void> {
  await mkdir(paths.stateDir, { recursive: true });
  await writeFile(paths.configFile, text);
}

async function rejectsWith(p: Promise<unknown>, code: string, re: RegExp): Promise<string> {
  let msg = "";
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isAtlasError(e), `expected AtlasError, got ${String(e)}`);
    assert.equal(e.code, code);
    assert.match(e.message, re);
    msg = e.message;
    return true;
  });
  return msg;
}

function throwsWith(fn: () => unknown, code: string, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isAtlasError(e), `expected AtlasError, got ${String(e)}`);
    assert.equal(e.code, code);
    assert.match(e.message, re);
    return true;
  });
}

// ---- schema ----

test("the schema is derived from DEFAULTS, key by key", () => {
  assert.ok(SECTIONS.includes("network"));
  assert.ok(SECTIONS.includes("rate_limit.unknown"));
  assert.ok(SECTIONS.includes("rate_limit.relay"));
  assert.deepEqual([...GROUPS], ["rate_limit"]);
  assert.equal(SCHEMA.get("network.port")?.type, "integer");
  assert.equal(SCHEMA.get("network.bootstrap")?.type, "list");
  assert.equal(SCHEMA.get("transport.enable_relay")?.type, "boolean");
  assert.equal(SCHEMA.get("network.host")?.type, "string");
  assert.equal(SCHEMA.get("farcaster.verify")?.type, "enum");
  assert.deepEqual(SCHEMA.get("farcaster.verify")?.values, ["hub", "signature"]);
  assert.equal(SCHEMA.get("rate_limit.verified.per_minute")?.default, 300);
  let leaves = 0;
  for (const section of Object.values(DEFAULTS)) {
    for (const v of Object.values(section)) {
      if (typeof v === "object" && !Array.isArray(v)) leaves += Object.keys(v).length;
      else leaves++;
    }
  }
  assert.equal(SCHEMA.size, leaves);
});

// ---- loading ----

test("a missing config file gives the defaults", async () => {
  await withHome(async (paths) => {
    assert.deepEqual(await loadConfig(paths), defaultConfig());
  });
});

test("a file that sets a few keys leaves the rest at their defaults", async () => {
  await withHome(async (paths) => {
    await writeConfig(
      paths,
      `# my node
[network]
port = 5000
bootstrap = ["1.2.3.4:4433", "atlas_abababababababababababababababababababababababababababababababab@5.6.7.8:4433"]

[transport]
offer_relay = true

[rate_limit.unknown]
per_second = 7

[farcaster]
verify = "signature"
`,
    );
    const cfg = await loadConfig(paths);
    const want = defaultConfig();
    want.network.port = 5000;
    want.network.bootstrap = [
      "1.2.3.4:4433",
      "atlas_abababababababababababababababababababababababababababababababab@5.6.7.8:4433",
    ];
    want.transport.offer_relay = true;
    want.rate_limit.unknown.per_second = 7;
    want.farcaster.verify = "signature";
    assert.deepEqual(cfg, want);
    // relay tier keeps its defaults even though unknown was changed
    assert.equal(cfg.rate_limit.relay.per_second, 5);
  });
});

test("an empty or comment-only file gives the defaults", async () => {
  await withHome(async (paths) => {
    await writeConfig(paths, "");
    assert.deepEqual(await loadConfig(paths), defaultConfig());
    await writeConfig(paths, "# nothing here\n\n");
    assert.deepEqual(await loadConfig(paths), defaultConfig());
  });
});

test("an unknown key is refused naming the key and the file", async () => {
  await withHome(async (paths) => {
    await writeConfig(paths, "[transport]\nfoo = 1\n");
    const msg = await rejectsWith(loadConfig(paths), "ERR_CONFIG", /unknown key 'transport\.foo'/);
    assert.ok(msg.startsWith(paths.configFile + ": "), msg);
  });
});

test("an unknown section or rate-limit tier is refused", async () => {
  await withHome(async (paths) => {
    await writeConfig(paths, "[nope]\nx = 1\n");
    await rejectsWith(loadConfig(paths), "ERR_CONFIG", /unknown key 'nope'/);
    await writeConfig(paths, "[rate_limit.friends]\nper_second = 1\n");
    await rejectsWith(loadConfig(paths), "ERR_CONFIG", /unknown key 'rate_limit\.friends'/);
    await writeConfig(paths, "port = 1\n");
    await rejectsWith(loadConfig(paths), "ERR_CONFIG", /unknown key 'port'/);
    await writeConfig(paths, '"network.port" = 1\n');
    await rejectsWith(loadConfig(paths), "ERR_CONFIG", /unknown key 'network\.port'/);
    await writeConfig(paths, "network = 5\n");
    await rejectsWith(loadConfig(paths), "ERR_CONFIG", /'network' must be a table, got integer/);
  });
});

test("a value of the wrong type is refused naming the key, the expected and the actual type", async () => {
  await withHome(async (paths) => {
    await writeConfig(paths, '[network]\nport = "4433"\n');
    const msg = await rejectsWith(loadConfig(paths), "ERR_CONFIG", /'network\.port' must be an integer, got string$/);
    assert.equal(msg, `${paths.configFile}: 'network.port' must be an integer, got string`);
    await writeConfig(paths, "[transport]\nenable_relay = 1\n");
    await rejectsWith(loadConfig(paths), "ERR_CONFIG", /'transport\.enable_relay' must be a boolean.*got integer/);
    await writeConfig(paths, '[network]\nbootstrap = "1.2.3.4:1"\n');
    await rejectsWith(loadConfig(paths), "ERR_CONFIG", /'network\.bootstrap' must be a list of strings, got string/);
    await writeConfig(paths, "[network]\nbootstrap = [1, 2]\n");
    await rejectsWith(loadConfig(paths), "ERR_CONFIG", /'network\.bootstrap' must be a list of strings/);
    await writeConfig(paths, '[farcaster]\nverify = "magic"\n');
    await rejectsWith(
      loadConfig(paths),
      "ERR_CONFIG",
      /'farcaster\.verify' must be one of hub, signature, got 'magic'/,
    );
    await writeConfig(paths, "[network]\nhost = 1979-05-27\n");
    await rejectsWith(loadConfig(paths), "ERR_CONFIG", /'network\.host' must be a string, got datetime/);
  });
});

test("bad TOML is a one-line error with its line number", async () => {
  await withHome(async (paths) => {
    await writeConfig(paths, "[network]\nport = 1\nhost = = 2\n");
    const msg = await rejectsWith(loadConfig(paths), "ERR_CONFIG", /invalid TOML at line 3: /);
    assert.ok(!msg.includes("\n"), JSON.stringify(msg));
    assert.ok(msg.startsWith(paths.configFile + ": "), msg);
    await writeConfig(paths, "[network]\nport = 1\nport = 2\n");
    const dup = await rejectsWith(loadConfig(paths), "ERR_CONFIG", /invalid TOML at line \d+/);
    assert.ok(!dup.includes("\n"));
  });
});

test("a float for an integer key is refused, even 5.0", async () => {
  await withHome(async (paths) => {
    await writeConfig(paths, "[transport]\ndial_timeout = 5.0\n");
    await rejectsWith(loadConfig(paths), "ERR_CONFIG", /'transport\.dial_timeout' must be an integer, got float/);
    await writeConfig(paths, "[transport]\ndial_timeout = 2.5\n");
    await rejectsWith(loadConfig(paths), "ERR_CONFIG", /must be an integer, got float/);
    await writeConfig(paths, "[transport]\ndial_timeout = 1e3\n");
    await rejectsWith(loadConfig(paths), "ERR_CONFIG", /must be an integer, got float/);
  });
});

test("values outside their range are refused naming the range", async () => {
  await withHome(async (paths) => {
    await writeConfig(paths, "[network]\nport = 70000\n");
    await rejectsWith(loadConfig(paths), "ERR_CONFIG", /'network\.port' must be between 0 and 65535, got 70000/);
    await writeConfig(paths, "[network]\nport = -1\n");
    await rejectsWith(loadConfig(paths), "ERR_CONFIG", /'network\.port' must be between 0 and 65535, got -1/);
    await writeConfig(paths, "[network]\nport = 0\n");
    assert.equal((await loadConfig(paths)).network.port, 0);
    await writeConfig(paths, "[transport]\ndial_timeout = 0\n");
    await rejectsWith(loadConfig(paths), "ERR_CONFIG", /'transport\.dial_timeout' must be positive, got 0/);
    await writeConfig(paths, "[rate_limit.verified]\nper_second = -3\n");
    await rejectsWith(loadConfig(paths), "ERR_CONFIG", /'rate_limit\.verified\.per_second' must be positive, got -3/);
    await writeConfig(paths, "[transport]\ndial_stagger_ms = 0\n");
    assert.equal((await loadConfig(paths)).transport.dial_stagger_ms, 0);
    await writeConfig(paths, "[transport]\ndial_stagger_ms = -1\n");
    await rejectsWith(loadConfig(paths), "ERR_CONFIG", /must be non-negative, got -1/);
    await writeConfig(paths, "[transport]\nbusy_poll_us = 0\n");
    assert.equal((await loadConfig(paths)).transport.busy_poll_us, 0);
    await writeConfig(paths, "[transport]\nbusy_poll_us = 10001\n");
    await rejectsWith(
      loadConfig(paths),
      "ERR_CONFIG",
      /'transport\.busy_poll_us' must be between 0 and 10000, got 10001/,
    );
    await writeConfig(paths, "[outbox]\nttl = 9223372036854775807\n");
    await rejectsWith(loadConfig(paths), "ERR_CONFIG", /'outbox\.ttl' is too large/);
  });
});

test("inline tables and dotted keys are read like sections", async () => {
  await withHome(async (paths) => {
    await writeConfig(paths, "network.port = 1234\nrate_limit.relay = { per_second = 9 }\n");
    const cfg = await loadConfig(paths);
    assert.equal(cfg.network.port, 1234);
    assert.equal(cfg.rate_limit.relay.per_second, 9);
    assert.equal(cfg.rate_limit.relay.per_minute, 60);
  });
});

// ---- overrides ----

test("a command-line override beats the file for a scalar and adds to the file's list", async () => {
  await withHome(async (paths) => {
    await writeConfig(paths, '[network]\nport = 5000\nbootstrap = ["a:1", "b:2"]\nrelays = ["r:1"]\n');
    const cfg = await loadConfig(paths, {
      scalars: { "network.port": 0, "transport.offer_relay": true, "network.host": "127.0.0.1" },
      lists: { "network.bootstrap": ["b:2", "c:3", "c:3"], "network.relays": [] },
    });
    assert.equal(cfg.network.port, 0);
    assert.equal(cfg.transport.offer_relay, true);
    assert.equal(cfg.network.host, "127.0.0.1");
    assert.deepEqual(cfg.network.bootstrap, ["a:1", "b:2", "c:3"]);
    assert.deepEqual(cfg.network.relays, ["r:1"]);
  });
});

test("command-line overrides are parsed by the key's type and a bad one is a usage error", async () => {
  await withHome(async (paths) => {
    const cfg = await loadConfig(paths, { scalars: { "network.port": "6000", "transport.enable_relay": "false" } });
    assert.equal(cfg.network.port, 6000);
    assert.equal(cfg.transport.enable_relay, false);
    await rejectsWith(
      loadConfig(paths, { scalars: { "network.port": "abc" } }),
      "ERR_USAGE",
      /'network\.port' must be an integer, got 'abc'/,
    );
    await rejectsWith(
      loadConfig(paths, { scalars: { "network.port": 1.5 } }),
      "ERR_USAGE",
      /'network\.port' must be an integer/,
    );
    await rejectsWith(loadConfig(paths, { scalars: { "nope.x": 1 } }), "ERR_USAGE", /unknown config key 'nope\.x'/);
    await rejectsWith(loadConfig(paths, { lists: { "network.port": ["1"] } }), "ERR_USAGE", /not a list/);
  });
});

// ---- parse / get / set ----

test("parseConfigValue parses a string by the key's type", () => {
  assert.equal(parseConfigValue("network.port", "4434"), 4434);
  assert.equal(parseConfigValue("network.port", "1_000"), 1000);
  assert.equal(parseConfigValue("transport.enable_relay", "false"), false);
  assert.equal(parseConfigValue("transport.enable_relay", "TRUE"), true);
  assert.equal(parseConfigValue("network.host", " 0.0.0.0"), " 0.0.0.0");
  assert.equal(parseConfigValue("farcaster.verify", "signature"), "signature");
  assert.deepEqual(parseConfigValue("network.bootstrap", '["a:1","b:2"]'), ["a:1", "b:2"]);
  assert.deepEqual(parseConfigValue("network.bootstrap", "['a:1', 'b:2']"), ["a:1", "b:2"]);
  assert.deepEqual(parseConfigValue("network.bootstrap", "a:1, b:2"), ["a:1", "b:2"]);
  assert.deepEqual(parseConfigValue("network.bootstrap", ""), []);
  assert.deepEqual(parseConfigValue("network.bootstrap", "[]"), []);
  assert.equal(parseConfigValue("rate_limit.relay.per_minute", "99"), 99);
  throwsWith(() => parseConfigValue("x.y", "1"), "ERR_USAGE", /^unknown config key 'x\.y'$/);
  throwsWith(() => parseConfigValue("network", "1"), "ERR_USAGE", /'network' is a section/);
  throwsWith(
    () => parseConfigValue("network.port", "abc"),
    "ERR_USAGE",
    /^'network\.port' must be an integer, got 'abc'$/,
  );
  throwsWith(() => parseConfigValue("network.port", "4.5"), "ERR_USAGE", /must be an integer, got '4\.5'/);
  throwsWith(() => parseConfigValue("network.port", "65536"), "ERR_USAGE", /must be between 0 and 65535, got 65536/);
  throwsWith(() => parseConfigValue("transport.dial_timeout", "0"), "ERR_USAGE", /must be positive, got 0/);
  throwsWith(() => parseConfigValue("transport.enable_relay", "yes"), "ERR_USAGE", /must be a boolean/);
  throwsWith(() => parseConfigValue("farcaster.verify", "x"), "ERR_USAGE", /must be one of hub, signature, got 'x'/);
  throwsWith(() => parseConfigValue("network.bootstrap", "[1, 2]"), "ERR_USAGE", /must be a list of strings/);
  throwsWith(() => parseConfigValue("network.bootstrap", '["a"'), "ERR_USAGE", /must be a list of strings/);
  // Address lists: every entry host:port (bootstrap and relays may pin a full node ID).
  throwsWith(
    () => parseConfigValue("network.relays", "nonsense"),
    "ERR_USAGE",
    /^'network\.relays' entries must be host:port or atlas_<node ID>@host:port, optionally after tcp:\/\/, got 'nonsense'$/,
  );
  throwsWith(
    () => parseConfigValue("network.relays", "atlas_abc@1.2.3.4:4433"),
    "ERR_USAGE",
    /got 'atlas_abc@1\.2\.3\.4:4433'/,
  );
  throwsWith(
    () => parseConfigValue("stun.servers", "1.2.3.4:0"),
    "ERR_USAGE",
    /'stun\.servers' entries must be host:port/,
  );
  throwsWith(
    () => parseConfigValue("stun.servers", `${"ab".repeat(32)}@1.2.3.4:1`),
    "ERR_USAGE",
    /'stun\.servers' entries must be host:port/,
  );
  assert.deepEqual(parseConfigValue("network.relays", '["[2001:db8::1]:4433", "relay.example.org:4433"]'), [
    "[2001:db8::1]:4433",
    "relay.example.org:4433",
  ]);
  assert.equal(parseConfigValue("transport.relay_bandwidth_limit", "0"), 0, "0 = no relay bandwidth limit");
});

test("config get reads a key, a section, a group or a sub-section, and formats it as TOML", () => {
  const cfg = defaultConfig();
  assert.equal(getConfigValue(cfg, "network.port"), 4433);
  assert.equal(getConfigValue(cfg, "rate_limit.unknown.per_second"), 5);
  assert.deepEqual(getConfigValue(cfg, "rate_limit.verified"), DEFAULTS.rate_limit.verified);
  assert.deepEqual(getConfigValue(cfg, "rate_limit"), DEFAULTS.rate_limit);
  assert.deepEqual(getConfigValue(cfg, "stun"), DEFAULTS.stun);
  throwsWith(() => getConfigValue(cfg, "network.nope"), "ERR_USAGE", /unknown config key 'network\.nope'/);
  throwsWith(() => getConfigValue(cfg, "rate_limit.unknown.nope"), "ERR_USAGE", /unknown config key/);
  // a copy, not a live reference
  (getConfigValue(cfg, "stun") as { servers: string[] }).servers.push("x:1");
  assert.equal(cfg.stun.servers.length, 2);

  assert.equal(formatConfigValue(4433), "4433");
  assert.equal(formatConfigValue(true), "true");
  assert.equal(formatConfigValue("::"), "::");
  assert.equal(formatConfigValue(["a:1", "b:2"]), '["a:1", "b:2"]');
  assert.deepEqual(JSON.parse(formatConfigValue(["a:1", "b:2"])), ["a:1", "b:2"]);
  assert.equal(formatConfigValue([]), "[]");
  const stun = formatConfigValue(getConfigValue(cfg, "stun"));
  assert.deepEqual(JSON.parse(JSON.stringify(parseToml(stun))), DEFAULTS.stun);
  const rl = formatConfigValue(getConfigValue(cfg, "rate_limit"), "rate_limit");
  assert.match(rl, /^\[rate_limit\.unknown\]$/m);
  assert.deepEqual(JSON.parse(JSON.stringify(parseToml(rl))).rate_limit, DEFAULTS.rate_limit);
});

test("every kind of key reads back what config set wrote", async () => {
  await withHome(async (paths) => {
    const cases: [string, string, unknown][] = [
      ["network.port", "5001", 5001],
      ["transport.offer_relay", "true", true],
      ["network.host", "127.0.0.1", "127.0.0.1"],
      [
        "network.bootstrap",
        '["1.2.3.4:4433","atlas_abababababababababababababababababababababababababababababababab@5.6.7.8:1"]',
        ["1.2.3.4:4433", "atlas_abababababababababababababababababababababababababababababababab@5.6.7.8:1"],
      ],
      ["network.relays", "r1:1,r2:2", ["r1:1", "r2:2"]],
      ["farcaster.verify", "signature", "signature"],
      ["rate_limit.relay.per_second", "11", 11],
      ["farcaster.hub_url", 'https://hub.example/"q"#x', 'https://hub.example/"q"#x'],
    ];
    for (const [key, raw, want] of cases) {
      await setConfigValue(paths, key, raw);
      const cfg = await loadConfig(paths);
      assert.deepEqual(getConfigValue(cfg, key), want, key);
    }
    // earlier settings survive later ones
    const cfg = await loadConfig(paths);
    assert.equal(cfg.network.port, 5001);
    assert.equal(cfg.transport.offer_relay, true);
    assert.equal(cfg.rate_limit.unknown.per_second, 5);
    // overwrite an existing key
    await setConfigValue(paths, "network.port", "5002");
    assert.equal((await loadConfig(paths)).network.port, 5002);
    await setConfigValue(paths, "network.bootstrap", "");
    assert.deepEqual((await loadConfig(paths)).network.bootstrap, []);
  });
});

test("config set writes a 0600 file holding only the keys that were set", async () => {
  await withHome(async (paths) => {
    await setConfigValue(paths, "network.port", "5001");
    await setConfigValue(paths, "rate_limit.verified.per_minute", "400");
    const st = await stat(paths.configFile);
    assert.equal(st.mode & 0o777, 0o600);
    const doc = parseToml(await readFile(paths.configFile, "utf8"));
    assert.deepEqual(JSON.parse(JSON.stringify(doc)), {
      network: { port: 5001 },
      rate_limit: { verified: { per_minute: 400 } },
    });
  });
});

test("config set keeps the user's comments and other keys", async () => {
  await withHome(async (paths) => {
    await writeConfig(
      paths,
      '# my settings\n[network]\nport = 5000   # public port\nhost = "0.0.0.0"\n\n# relays\n[transport]\noffer_relay = true\n',
    );
    await setConfigValue(paths, "network.port", "6000");
    await setConfigValue(paths, "transport.relay_capacity", "8");
    await setConfigValue(paths, "stun.timeout", "4");
    const text = await readFile(paths.configFile, "utf8");
    assert.match(text, /# my settings/);
    assert.match(text, /port = 6000 +# public port/);
    assert.match(text, /# relays/);
    const cfg = await loadConfig(paths);
    assert.equal(cfg.network.port, 6000);
    assert.equal(cfg.network.host, "0.0.0.0");
    assert.equal(cfg.transport.offer_relay, true);
    assert.equal(cfg.transport.relay_capacity, 8);
    assert.equal(cfg.stun.timeout, 4);
  });
});

test("config set rewrites a file in an unusual layout rather than fail", async () => {
  await withHome(async (paths) => {
    await writeConfig(
      paths,
      'network.port = 1\nrate_limit.relay = { per_second = 9 }\n[stun]\nservers = [\n  "a:1",\n  "b:2",\n]\ntimeout = 2\n',
    );
    await setConfigValue(paths, "network.port", "2");
    await setConfigValue(paths, "network.host", "::1");
    await setConfigValue(paths, "rate_limit.relay.per_minute", "70");
    await setConfigValue(paths, "stun.servers", "c:3");
    await setConfigValue(paths, "stun.interval", "30");
    const cfg = await loadConfig(paths);
    assert.equal(cfg.network.port, 2);
    assert.equal(cfg.network.host, "::1");
    assert.equal(cfg.rate_limit.relay.per_second, 9);
    assert.equal(cfg.rate_limit.relay.per_minute, 70);
    assert.deepEqual(cfg.stun.servers, ["c:3"]);
    assert.equal(cfg.stun.timeout, 2);
    assert.equal(cfg.stun.interval, 30);
  });
});

test("config set of an unknown key or a bad value is refused and leaves the file untouched", async () => {
  await withHome(async (paths) => {
    await rejectsWith(setConfigValue(paths, "network.nope", "1"), "ERR_USAGE", /unknown config key 'network\.nope'/);
    await assert.rejects(stat(paths.configFile), { code: "ENOENT" });
    const original = "[network]\nport = 5000 # keep\n";
    await writeConfig(paths, original);
    await rejectsWith(setConfigValue(paths, "transport.foo", "1"), "ERR_USAGE", /unknown config key 'transport\.foo'/);
    await rejectsWith(
      setConfigValue(paths, "network.port", "abc"),
      "ERR_USAGE",
      /'network\.port' must be an integer, got 'abc'/,
    );
    await rejectsWith(setConfigValue(paths, "farcaster.verify", "nope"), "ERR_USAGE", /must be one of hub, signature/);
    assert.equal(await readFile(paths.configFile, "utf8"), original);
  });
});

test("config set refuses to rewrite an invalid file", async () => {
  await withHome(async (paths) => {
    const bad = '[network]\nport = "x"\n';
    await writeConfig(paths, bad);
    await rejectsWith(
      setConfigValue(paths, "network.host", "::1"),
      "ERR_CONFIG",
      /'network\.port' must be an integer, got string/,
    );
    assert.equal(await readFile(paths.configFile, "utf8"), bad);
  });
});

// ---- render ----

function reparse(text: string): Config {
  const doc = parseToml(text);
  return JSON.parse(JSON.stringify(doc)) as Config;
}

test("config show prints TOML that parses back to the effective config", async () => {
  assert.deepEqual(reparse(renderConfig(defaultConfig())), defaultConfig());
  await withHome(async (paths) => {
    await writeConfig(
      paths,
      '[network]\nport = 0\nbootstrap = ["a:1"]\n[farcaster]\nverify = "signature"\nhub_url = "http://h/\\"x\\"\\ttab"\n',
    );
    const cfg = await loadConfig(paths, { lists: { "network.bootstrap": ["b:2"] } });
    const text = renderConfig(cfg);
    assert.deepEqual(reparse(text), cfg);
    assert.match(text, /^\[rate_limit\.relay\]$/m);
    assert.doesNotMatch(text, /^\[rate_limit\]$/m);
    // and the rendered text is itself a valid config file
    await writeConfig(paths, text);
    assert.deepEqual(await loadConfig(paths), cfg);
  });
});
