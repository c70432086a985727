/**
 * The Prometheus endpoint (issue 14, docs/operating.md "Metrics"), scraped over HTTP from real
 * daemon, relay and bootstrap processes on 127.0.0.1: the metrics exist with their labels, and
 * their values follow real traffic (a ping, a send, a registration, a relayed ping, a lookup).
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { appendFile, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { cleanupAll, initHome, type Listener, runAtlas, startListener } from "./helpers/cli.ts";
import { PromMetrics } from "../src/metrics/prom.ts";
import { METRICS } from "../src/util/metrics.ts";
import { loadUdpAddon } from "../src/transport/udp/addon.ts";
import { Atlas } from "../src/index.ts";

after(cleanupAll);

const METRICS_ON = '\n[metrics]\nlisten = "127.0.0.1:0"\n';

/** One sample line of the text format: `name{a="x",b="y"} 3`. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parse(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/** The value of the sample with exactly these labels, or undefined. */
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const want = JSON.stringify(Object.entries(labels).sort());
  return samples.find((s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === want)?.value;
}

async function metricsAddress(home: string): Promise<string> {
  const r = await runAtlas(["status", "--json"], { home });
  assert.equal(r.code, 0, r.stderr);
  const a = JSON.parse(r.stdout).metrics_address;
  assert.match(a, /^127\.0\.0\.1:\d+$/);
  return a;
}

async function scrape(addr: string): Promise<Sample[]> {
  const res = await fetch(`http://${addr}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  return parse(await res.text());
}

/** Scrape until `ok` holds (at most `ms`); returns the samples that satisfied it. */
async function scrapeUntil(addr: string, what: string, ok: (s: Sample[]) => boolean, ms = 10_000): Promise<Sample[]> {
  const end = Date.now() + ms;
  for (;;) {
    const s = await scrape(addr);
    if (ok(s)) return s;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function metricsHome(name: string, extra = ""): Promise<{ home: string; nodeId: string }> {
  const h = await initHome(name);
  await appendFile(join(h.home, "state", "config.toml"), METRICS_ON + extra);
  return h;
}

test("every metric is documented in docs/operating.md's metrics table", async () => {
  const doc = await readFile(join(import.meta.dirname!, "..", "docs", "operating.md"), "utf8");
  const missing = Object.keys(METRICS).filter((n) => !doc.includes(`| \`${n}\``));
  assert.deepEqual(missing, []);
});

test("two nodes' metrics in one process keep separate counts", async () => {
  const one = new PromMetrics({ role: "daemon", version: "t", processMetrics: false });
  const two = new PromMetrics({ role: "daemon", version: "t", processMetrics: false });
  one.inc("atlas_messages_sent_total");
  one.inc("atlas_messages_sent_total");
  two.inc("atlas_messages_sent_total", {}, 0);
  assert.equal(value(parse(await one.text()), "atlas_messages_sent_total"), 2);
  assert.equal(value(parse(await two.text()), "atlas_messages_sent_total"), 0);
});

test("a metrics.listen that is not loopback stops the daemon with one line naming metrics.allow_remote", async () => {
  const h = await initHome("exposed");
  await appendFile(join(h.home, "state", "config.toml"), '\n[metrics]\nlisten = "0.0.0.0:0"\n');
  const r = await runAtlas(["daemon", "--host", "127.0.0.1", "--port", "0"], { home: h.home, timeoutMs: 15_000 });
  assert.equal(r.code, 1);
  assert.equal(r.stdout, "");
  assert.match(
    r.stderr,
    /^error: 'metrics\.listen' is 0\.0\.0\.0:0, not a loopback address: set metrics\.allow_remote = true/,
  );
  assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
});

test("a daemon without metrics.listen reports no metrics address", async () => {
  const { listener, a } = await (async () => {
    const a = await initHome("quiet");
    return { a, listener: await startListener(a.home, [], { cmd: ["daemon"] }) };
  })();
  const r = await runAtlas(["status", "--json"], { home: a.home });
  assert.equal(JSON.parse(r.stdout).metrics_address, null);
  await listener.stop();
});

describe("two daemons scraped while they talk", { timeout: 60_000 }, () => {
  let alpha: Listener;
  let bHome: string;
  let aMetrics: string;
  let bMetrics: string;

  test("a fresh daemon serves its role, zero message counts and no sessions", async () => {
    const a = await metricsHome("alpha");
    const b = await metricsHome("beta");
    bHome = b.home;
    alpha = await startListener(a.home, [], { cmd: ["daemon"] });
    await startListener(b.home, [], { cmd: ["daemon"] });
    aMetrics = await metricsAddress(a.home);
    bMetrics = await metricsAddress(b.home);
    const s = await scrape(aMetrics);
    assert.equal(value(s, "atlas_info", { role: "daemon", version: "0.1.0" }), 1);
    assert.equal(value(s, "atlas_messages_sent_total"), 0);
    assert.equal(value(s, "atlas_messages_received_total"), 0);
    assert.equal(value(s, "atlas_outbox_depth"), 0);
    assert.equal(s.filter((x) => x.name === "atlas_sessions").length, 0);
    assert.equal(
      value(s, "atlas_relay_pipes"),
      undefined,
      "a daemon without offer_relay lists no relay-server metrics",
    );
    assert.ok(s.some((x) => x.name === "process_resident_memory_bytes"), "process metrics are served");
    // busy polls are counted by the atlas_udp addon: listed when the daemon uses it, absent with node:dgram
    const r = await runAtlas(["status", "--json"], { home: a.home });
    const batched = JSON.parse(r.stdout).datagram_io === "batched";
    assert.equal(batched, loadUdpAddon() !== null, "the daemon uses the addon exactly when it loads here");
    for (const ended of ["io", "timeout"]) {
      assert.equal(typeof value(s, "atlas_busy_polls_total", { ended }), batched ? "number" : "undefined", ended);
    }
  });

  test("a ping from the other daemon counts one handshake each side and one direct session by trust", async () => {
    const r = await runAtlas(["net", "ping", alpha.address, "--count", "1", "--json"], { home: bHome });
    assert.equal(r.code, 0, r.stderr);
    const a = await scrape(aMetrics);
    assert.equal(value(a, "atlas_handshakes_total", { direction: "inbound", result: "ok", reason: "none" }), 1);
    assert.equal(value(a, "atlas_sessions", { path: "direct", trust: "unknown" }), 1);
    const b = await scrape(bMetrics);
    assert.equal(value(b, "atlas_handshakes_total", { direction: "outbound", result: "ok", reason: "none" }), 1);
    assert.equal(value(b, "atlas_sessions", { path: "direct", trust: "unknown" }), 1);
  });

  test("a send counts one message sent and delivered by the sender and one received by the target", async () => {
    const r = await runAtlas(["net", "send", alpha.nodeId, "hello metrics", "--json"], { home: bHome });
    assert.equal(r.code, 0, r.stderr);
    const b = await scrapeUntil(
      bMetrics,
      "beta's delivered count",
      (s) => value(s, "atlas_messages_finished_total", { outcome: "delivered" }) === 1,
    );
    assert.equal(value(b, "atlas_messages_sent_total"), 1);
    assert.equal(value(b, "atlas_outbox_depth"), 0);
    assert.equal(value(await scrape(aMetrics), "atlas_messages_received_total"), 1);
  });
});

test(
  "sixteen sends at once from an agent program are answered, most of them on a pipe",
  { timeout: 60_000 },
  async () => {
    const a = await metricsHome("piped-to", "[rate_limit.unknown]\nper_second = 1000\n");
    const b = await initHome("piping");
    const da = await startListener(a.home, [], { cmd: ["daemon"] });
    await startListener(b.home, [], { cmd: ["daemon"] });
    const atlas = await Atlas.attach({ home: b.home });
    try {
      await atlas.connect(`${a.nodeId}@${da.address}`);
      const sent = await Promise.all(Array.from({ length: 16 }, (_, i) => atlas.send(a.nodeId, { i })));
      assert.deepEqual(sent.map((r) => r.ack), Array(16).fill("received"), "each delivered at once");
    } finally {
      await atlas.close();
    }
    const s = await scrape(await metricsAddress(a.home));
    const own = value(s, "atlas_requests_served_total", { stream: "own" }) ?? 0;
    const pipe = value(s, "atlas_requests_served_total", { stream: "pipe" }) ?? 0;
    assert.equal(own + pipe, 16, `own ${own}, pipe ${pipe}`);
    assert.ok(pipe > own, `own ${own}, pipe ${pipe}: requests made while others waited share a stream`);
    assert.equal(value(s, "atlas_messages_received_total"), 16);
  },
);

describe("relay and bootstrap nodes scraped while a daemon uses them", { timeout: 60_000 }, () => {
  test("registration, STUN, a relayed ping and a lookup move the relay's, bootstrap's and daemon's metrics", async () => {
    const relayH = await metricsHome("relay-node");
    const relay = await startListener(relayH.home, [], { cmd: ["relay"] });
    const bootH = await metricsHome("boot-node");
    const boot = await startListener(bootH.home, [], { cmd: ["bootstrap"] });
    const c = await metricsHome("gamma");
    await writeFile(
      join(c.home, "state", "config.toml"),
      `[stun]\nservers = ["127.0.0.1:${relay.port}"]\n[transport]\nrelay_announce_interval = 1\n${METRICS_ON}`,
    );
    await startListener(c.home, ["--relay", relay.address, "--bootstrap", boot.address], { cmd: ["daemon"] });
    const [rM, bM, cM] = (await Promise.all([relayH.home, bootH.home, c.home].map(metricsAddress))) as [
      string,
      string,
      string,
    ];

    const bs = await scrapeUntil(bM, "gamma registered", (s) => value(s, "atlas_bootstrap_registered") === 1);
    assert.equal(value(bs, "atlas_info", { role: "bootstrap", version: "0.1.0" }), 1);
    assert.ok(value(bs, "atlas_bootstrap_registrations_total", { result: "new" }) === 1);
    assert.equal(value(bs, "atlas_bootstrap_lookups_total"), 0);
    const rs = await scrapeUntil(rM, "gamma at the relay", (s) => value(s, "atlas_relay_registered") === 1);
    assert.equal(value(rs, "atlas_info", { role: "relay", version: "0.1.0" }), 1);
    assert.equal(value(rs, "atlas_relay_pipes_opened_total"), 0);
    // The public address may be known (from a peer's observation) before the STUN check is counted.
    const cs = await scrapeUntil(
      cM,
      "gamma's STUN answer",
      (s) => value(s, "atlas_stun_checks_total", { result: "ok" })! >= 1,
    );
    assert.equal(value(cs, "atlas_public_address_known"), 1);

    // delta reaches gamma, knowing only its node ID, through the relay; then looks it up.
    const d = await initHome("delta");
    await appendFile(join(d.home, "state", "config.toml"), `[network]\nrelays = ["${relay.address}"]\n`);
    const ping = await runAtlas(["net", "ping", c.nodeId, "--count", "1", "--json"], { home: d.home });
    assert.equal(ping.code, 0, ping.stderr);
    assert.equal(JSON.parse(ping.stdout).path, "relay");
    const found = await runAtlas(["net", "discover", "--bootstrap", boot.address, "--json"], { home: d.home });
    assert.equal(found.code, 0, found.stderr);
    assert.equal(value(await scrape(bM), "atlas_bootstrap_lookups_total"), 1);
    const after = await scrape(rM);
    assert.equal(value(after, "atlas_relay_pipes_opened_total"), 1);
    assert.ok(value(after, "atlas_relay_forwarded_packets_total")! > 0);
    assert.ok(
      value(after, "atlas_relay_forwarded_bytes_total")! > value(after, "atlas_relay_forwarded_packets_total")!,
    );
    assert.equal(value(after, "atlas_relay_dropped_total", { reason: "queue_full" }), 0);
    const gamma = await scrape(cM);
    assert.equal(value(gamma, "atlas_handshakes_total", { direction: "inbound", result: "ok", reason: "none" }), 1);
  });
});
