/**
 * Bootstrap abuse (docs/protocol.md#bootstrap-and-discovery, docs/protocol.md#messages), against a real `atlas bootstrap` process with a small
 * `bootstrap.capacity`:
 * - registrations naming another node_id than the session's → Error 2003, nothing registered;
 * - malformed signed records (signed by another key, altered after signing, random bytes) → 2003;
 * - malformed frames (discover limits of 0, 2^40, −5, a string; payloads that are no map or miss
 *   fields; an unknown type; a wrong version) → Error 2003 (1001 for the version);
 * - a sybil fill of capacity + 10 identities → exactly `capacity` registered, the rest Error 4001,
 *   a registered node still renews;
 * - the largest discover limit (2^32 − 1) → at most 500 records (all of them below that), in one frame.
 * The bootstrap node's per-address handshake limit is raised (5000 a minute): the sybils all come
 * from 127.0.0.1. Each identity sends at most four requests, under the per-peer burst.
 */
import { randomBytes } from "node:crypto";
import { makeRecord } from "../src/bootstrap/record.ts";
import { MAX_DISCOVER_LIMIT } from "../src/bootstrap/registry.ts";
import { homePaths } from "../src/config/paths.ts";
import { callDaemon } from "../src/daemon/control-client.ts";
import { ProtocolCode } from "../src/errors.ts";
import { identityFromSeed } from "../src/identity/identity.ts";
import { generateSeed } from "../src/identity/keys.ts";
import type { AtlasNode } from "../src/net/node.ts";
import type { Session } from "../src/net/session.ts";
import { formatAddr } from "../src/transport/addr.ts";
import type { BootstrapRegister, SignedRecord, WireMessage } from "../src/wire/messages.ts";
import { fullScale } from "./budget.ts";
import { Crowd, pool } from "./crowd.ts";
import { askLabel, askOpen, askRaw, rawFrame } from "./exchange.ts";
import { count, expect, mib, newRow, type Phase, type PhaseRow, rss } from "./harness.ts";
import { startVictim, type Victim } from "./victim.ts";

/** Requests per identity: under the bootstrap node's per-peer burst (rate_limit.unknown.per_second = 5). */
const PER_IDENTITY = 4;
/** Sybils beyond the capacity: each must be refused with 4001. */
const OVERFLOW = 10;
const REJECTED = `Error ${ProtocolCode.ERR_MESSAGE_REJECTED}`;
const FULL = `Error ${ProtocolCode.ERR_RATE_LIMITED}`;
const BAD_VERSION = `Error ${ProtocolCode.ERR_PROTOCOL_VERSION}`;

interface Scene {
  row: PhaseRow;
  boot: Victim;
  crowd: Crowd;
  capacity: number;
}

export const bootstrapAbusePhase: Phase = {
  name: "bootstrap-abuse",
  async run(ctx) {
    // Full scale fills past MAX_DISCOVER_LIMIT, so that the discover cap is met with real records.
    const capacity = fullScale(ctx) ? MAX_DISCOVER_LIMIT + 20 : 20;
    const row = newRow(`bootstrap-abuse (spoofed node_id, bad records and frames, ${capacity + OVERFLOW} sybils)`);
    const boot = await startVictim(
      `[bootstrap]\ncapacity = ${capacity}\n[security]\nhandshakes_per_ip_per_minute = 5000\n`,
      { cmd: ["bootstrap"] },
    );
    const crowd = await Crowd.open();
    const s: Scene = { row, boot, crowd, capacity };
    try {
      row.rssBefore = rss(boot.pid);
      await spoofedIds(s);
      await badRecords(s);
      await malformedFrames(s);
      const started = Date.now();
      await sybilFill(s);
      ctx.log(`sybil fill: ${capacity + OVERFLOW} registrations in ${Date.now() - started} ms`);
      await hugeDiscover(s);
      row.rssAfter = rss(boot.pid);
      expect(row, boot.daemon.proc.exitCode === null, "the bootstrap process is still running");
      row.notes.push(`bootstrap RSS ${mib(row.rssBefore)} → ${mib(row.rssAfter)} with ${capacity} records`);
      return row;
    } finally {
      await crowd.close();
      await boot.stop();
    }
  },
};

function session(s: Scene, n: AtlasNode): Promise<Session> {
  return n.connectTo(s.boot.addr, { expectedNodeId: s.boot.nodeId });
}

/** A fresh identity's session with the bootstrap node. */
async function stranger(s: Scene): Promise<{ n: AtlasNode; session: Session }> {
  const n = await s.crowd.add({ name: "abuser" });
  return { n, session: await session(s, n) };
}

function registration(n: AtlasNode, o: Partial<BootstrapRegister> = {}): BootstrapRegister {
  return {
    type: "BootstrapRegister",
    node_id: n.nodeId,
    address: formatAddr(n.endpoint.local),
    timestamp: Math.floor(Date.now() / 1000),
    ...o,
  };
}

function signedBy(n: AtlasNode, id = n.identity): SignedRecord {
  return makeRecord(id, { address: formatAddr(n.endpoint.local), relays: [], name: "abuser", skills: [] });
}

/** Send each request on its own stream, `PER_IDENTITY` per identity; count the labels under `what`. */
async function volley(s: Scene, what: string, make: (n: AtlasNode) => WireMessage[]): Promise<string[]> {
  const labels: string[] = [];
  const all = make(await s.crowd.add({ name: "template" }));
  for (let i = 0; i < all.length; i += PER_IDENTITY) {
    const { n, session: sess } = await stranger(s);
    for (const req of make(n).slice(i, i + PER_IDENTITY)) {
      const r = await askLabel(sess, req);
      r.stream?.abort(0);
      labels.push(r.label);
    }
    await sess.disconnect();
  }
  s.row.attempts += labels.length;
  for (const l of labels) count(s.row, `${what} → ${l}`);
  return labels;
}

async function registered(s: Scene): Promise<number> {
  const r = await callDaemon<{ registered: number }>(homePaths(s.boot.home), "bootstrap.status", {}, 10_000);
  return r.registered;
}

async function spoofedIds(s: Scene): Promise<void> {
  const other = () => identityFromSeed(generateSeed()).nodeId;
  const labels = await volley(s, "spoofed node_id", (n) => [
    registration(n, { node_id: s.boot.nodeId }),
    registration(n, { node_id: other() }),
    registration(n, { node_id: other(), record: signedBy(n) }),
    registration(n, { node_id: other() }),
  ]);
  expect(s.row, labels.every((l) => l === REJECTED), `every spoofed node_id answered ${REJECTED}`);
  expect(s.row, (await registered(s)) === 0, "no spoofed registration was stored");
}

async function badRecords(s: Scene): Promise<void> {
  const labels = await volley(s, "malformed record", (n) => {
    const good = signedBy(n);
    const altered = { data: Uint8Array.from(good.data), signature: good.signature };
    altered.data[altered.data.length - 1]! ^= 1;
    const forger = identityFromSeed(generateSeed());
    return [
      registration(n, { record: signedBy(n, forger) }),
      registration(n, { record: altered }),
      registration(n, {
        record: { data: new Uint8Array(randomBytes(200)), signature: new Uint8Array(randomBytes(64)) },
      }),
      registration(n, { record: { data: new Uint8Array(0), signature: new Uint8Array(64) } }),
    ];
  });
  expect(s.row, labels.every((l) => l === REJECTED), `every malformed record answered ${REJECTED}`);
  expect(s.row, (await registered(s)) === 0, "no registration with a bad record was stored");
}

/** Frames the encoder would refuse to make, each expected to be answered with an Error frame. */
async function malformedFrames(s: Scene): Promise<void> {
  const cases: [string, Uint8Array][] = [
    [REJECTED, rawFrame("BootstrapDiscover", { limit: 0 })],
    [REJECTED, rawFrame("BootstrapDiscover", { limit: 2 ** 40 })],
    [REJECTED, rawFrame("BootstrapDiscover", { limit: -5 })],
    [REJECTED, rawFrame("BootstrapDiscover", { limit: "all" })],
    [REJECTED, rawFrame("BootstrapRegister", [1, 2, 3])],
    [REJECTED, rawFrame("BootstrapRegister", { node_id: "atlas_x" })],
    [REJECTED, rawFrame(0x7f, { limit: 1 })],
    [BAD_VERSION, rawFrame("BootstrapDiscover", {}, { version: 2 })],
  ];
  const labels: string[] = [];
  for (let i = 0; i < cases.length; i += PER_IDENTITY) {
    const { session: sess } = await stranger(s);
    for (const [, frame] of cases.slice(i, i + PER_IDENTITY)) labels.push(await askRaw(sess, frame));
    await sess.disconnect();
  }
  s.row.attempts += labels.length;
  for (const l of labels) count(s.row, `malformed frame → ${l}`);
  const wrong = cases.map(([want], i) => (labels[i] === want ? null : `#${i}: ${labels[i]} (want ${want})`));
  expect(
    s.row,
    wrong.every((w) => w === null),
    `every malformed frame answered as docs/protocol.md#messages says: ${wrong.join(" ")}`,
  );
}

/**
 * capacity + 10 identities register, 16 at a time, each hanging up after its answer (as a daemon
 * does; holding 530 sessions would only meet transport.max_connections): exactly capacity are
 * stored, the rest are told 4001, and a registered node still renews.
 */
async function sybilFill(s: Scene): Promise<void> {
  const made = await pool(Array.from({ length: s.capacity + OVERFLOW }), 16, async () => {
    const { n, session: sess } = await stranger(s);
    const r = await askLabel(sess, registration(n, { record: signedBy(n) }));
    await sess.disconnect();
    return { n, label: r.label };
  });
  const done = made.flatMap((m) => (m?.ok ? [m.value] : []));
  expect(s.row, done.length === made.length, `every sybil authenticated (${done.length} of ${made.length})`);
  const labels = done.map((d) => d.label);
  s.row.attempts += labels.length;
  for (const l of labels) count(s.row, `sybil registration → ${l}`);
  const ok = labels.filter((l) => l === "MessageAck").length;
  expect(s.row, ok === s.capacity, `exactly capacity (${s.capacity}) registered (${ok})`);
  expect(s.row, labels.filter((l) => l === FULL).length === done.length - s.capacity, `the rest answered ${FULL}`);
  expect(s.row, (await registered(s)) === s.capacity, "the registry holds capacity records");
  const renew = done.find((d) => d.label === "MessageAck")?.n;
  let again = "no registered sybil";
  if (renew) {
    const sess = await session(s, renew);
    again = (await askLabel(sess, registration(renew))).label;
    await sess.disconnect();
  }
  count(s.row, `renewal when full → ${again}`);
  expect(s.row, again === "MessageAck", `a registered node renews while the registry is full (${again})`);
}

/** The largest limit the schema allows: capped at MAX_DISCOVER_LIMIT, the answer in one frame. */
async function hugeDiscover(s: Scene): Promise<void> {
  const { session: sess } = await stranger(s);
  let got = "no answer";
  let peers = -1;
  try {
    const r = await askOpen(sess, { type: "BootstrapDiscover", limit: 0xffffffff });
    r.stream.abort(0);
    got = r.answer?.type ?? got;
    if (r.answer?.type === "BootstrapPeers") peers = r.answer.peers.length;
  } catch (e) {
    got = (e as Error).message;
  }
  s.row.attempts++;
  count(s.row, `discover limit 2^32−1 → ${got} (${peers} peers)`);
  const want = Math.min(s.capacity, MAX_DISCOVER_LIMIT);
  expect(s.row, peers === want, `discover with limit 2^32−1 answered ${want} peers (${got}, ${peers})`);
}
