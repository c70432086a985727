/**
 * The read budget (transport/read-budget.ts): its arithmetic, and over real QUIC on 127.0.0.1 what a
 * sender sees when a frame does not fit — Error 4001 at the header, the stream stopped, nothing of
 * the frame kept — while frames that fit are delivered.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Config, defaultConfig } from "../src/config/defaults.ts";
import { identityFromSeed } from "../src/identity/identity.ts";
import { generateSeed } from "../src/identity/keys.ts";
import { AtlasNode } from "../src/net/node.ts";
import { openStore } from "../src/store/index.ts";
import { BufferPool, CONN_FLOOR_BYTES, ConnBudget } from "../src/transport/read-budget.ts";
import { FramedStream } from "../src/wire/framed-stream.ts";
import { HEADER_LEN, MsgType } from "../src/wire/messages.ts";
import { isAtlasError } from "../src/errors.ts";
import { buildMessage, deliverOn } from "../src/net/messaging.ts";
import { waitFor } from "./helpers/wait.ts";

const KiB = 1024;
const MiB = 1024 * KiB;

describe("ConnBudget", () => {
  test("a connection's first CONN_FLOOR_BYTES do not draw on the shared pool", () => {
    const pool = new BufferPool(1 * MiB);
    const b = new ConnBudget(pool, 16 * MiB);
    assert.ok(b.reserve(CONN_FLOOR_BYTES));
    assert.equal(pool.used, 0);
    assert.ok(b.reserve(512 * KiB));
    assert.equal(pool.used, 512 * KiB);
    b.release(CONN_FLOOR_BYTES + 512 * KiB);
    assert.equal(pool.used, 0);
    assert.equal(b.reserved, 0);
  });

  test("a reservation that would pass the connection's limit or the pool's cap is refused whole", () => {
    const pool = new BufferPool(1 * MiB);
    const a = new ConnBudget(pool, 2 * MiB);
    const c = new ConnBudget(pool, 2 * MiB);
    assert.ok(a.reserve(CONN_FLOOR_BYTES + 1 * MiB)); // the pool is now full
    assert.equal(a.reserve(1), false);
    assert.equal(c.reserve(CONN_FLOOR_BYTES + 1), false, "above c's floor, and the pool is full");
    assert.ok(c.reserve(CONN_FLOOR_BYTES), "c's floor is still its own");
    assert.equal(c.reserved, CONN_FLOOR_BYTES);
    const d = new ConnBudget(new BufferPool(100 * MiB), 2 * MiB);
    assert.equal(d.reserve(2 * MiB + 1), false, "the connection's limit");
    assert.equal(d.reserved, 0);
  });

  test("releasing more than is held releases what is held", () => {
    const pool = new BufferPool(10 * MiB);
    const b = new ConnBudget(pool, 10 * MiB);
    b.reserve(1 * MiB);
    b.release(5 * MiB);
    assert.equal(b.reserved, 0);
    assert.equal(pool.used, 0);
  });
});

describe("frames over the read budget, over QUIC", () => {
  const dirs: string[] = [];
  const nodes: AtlasNode[] = [];
  after(async () => {
    for (const n of nodes) await n.close().catch(() => {});
    for (const n of nodes) await n.store.close();
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  });

  async function node(listen: boolean, tune: (c: Config) => void = () => {}): Promise<AtlasNode> {
    const dir = await mkdtemp(join(tmpdir(), "atlas-budget-"));
    dirs.push(dir);
    const config = defaultConfig();
    config.stun.servers = [];
    tune(config);
    const n = await AtlasNode.start({
      config,
      identity: identityFromSeed(generateSeed()),
      profile: { name: listen ? "receiver" : "sender", bio: "", skills: [] },
      store: await openStore(join(dir, "p.db")),
      listen,
      host: "127.0.0.1",
      port: 0,
    });
    nodes.push(n);
    return n;
  }

  function bigBody(bytes: number): string {
    return JSON.stringify("x".repeat(bytes));
  }

  test("a Message larger than the connection's budget gets Error 4001 and one that fits is delivered", async () => {
    const receiver = await node(true, (c) => {
      c.transport.max_buffered_per_conn = 1 * MiB;
      c.rate_limit.unknown.bytes_per_minute = 1000 * MiB;
    });
    let delivered = 0;
    receiver.handle("Message", (_s, req) => {
      if (req.type !== "Message") return Promise.resolve(null);
      delivered++;
      return Promise.resolve({ type: "MessageAck", msg_id: req.id, status: "received" });
    });
    const sender = await node(false);
    const s = await sender.connectTo(receiver.endpoint.local);
    await assert.rejects(
      deliverOn(s, buildMessage(sender, receiver.nodeId, bigBody(2 * MiB)), 10_000),
      (e: unknown) => isAtlasError(e, "ERR_RATE_LIMITED") && /receive buffer full/.test((e as Error).message),
    );
    await deliverOn(s, buildMessage(sender, receiver.nodeId, bigBody(900 * KiB)), 10_000);
    assert.equal(delivered, 1);
    assert.equal(receiver.endpoint.readPool.used, 0, "every reservation was released");
  });

  test("an unfinished large frame is charged to the rate limit at its header, so the next one is refused", async () => {
    const receiver = await node(true, (c) => (c.rate_limit.unknown.bytes_per_minute = 3 * MiB));
    const sender = await node(false);
    const s = await sender.connectTo(receiver.endpoint.local);
    // 2 MiB declared, 1 MiB sent: never completes, yet counts against the 3 MiB a minute.
    const first = s.conn.openStream();
    const head = new Uint8Array(HEADER_LEN + 1 * MiB);
    head.set([0xac, 0x01, 0x01, MsgType.Message]);
    new DataView(head.buffer).setUint32(4, 2 * MiB);
    void first.write(head).catch(() => {});
    await waitFor("bytes held in the read pool", () => receiver.endpoint.readPool.used > 0, { intervalMs: 10 });
    // The second large frame's header is over the limit: refused before any payload is read.
    const second = new FramedStream(s.conn.openStream());
    const head2 = head.slice(0, HEADER_LEN + 64 * KiB);
    // (the receiver may stop the stream before all of it is written: the write's fate does not matter)
    void second.stream.write(head2).catch(() => {});
    const answer = await second.read(5000);
    assert.equal(answer?.type, "Error");
    assert.equal(answer?.type === "Error" && answer.code, 4001);
    assert.equal(answer?.type === "Error" && answer.ref_msg_id, undefined, "the id is in the payload, never read");
  });
});
