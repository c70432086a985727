/**
 * Bulk transfer under packet loss (docs/protocol.md#transport; NOTES: the high-level @matrixai classes stall here,
 * our own driver must not). 20 MB go client → server through a forwarder that drops 2% of the
 * datagrams in each direction; the receiver must get every byte, in order.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { QuicEndpoint } from "../src/transport/endpoint.ts";
import type { QuicStream } from "../src/transport/stream.ts";
import { within } from "../src/util/time.ts";
import { UdpForwarder } from "./helpers/udp-forwarder.ts";
import { bindTestEndpoint } from "./helpers/endpoint.ts";

const TOTAL = 20_000_000;
const CHUNK = 256 * 1024;
const DROP = 0.02;
const BOUND_MS = 120_000;

/** Deterministic pseudo-random payload: xorshift32 words, the same on both sides for a seed. */
function payload(size: number, seed: number): Uint8Array {
  const words = new Uint32Array(Math.ceil(size / 4));
  let x = seed >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    words[i] = x;
  }
  return new Uint8Array(words.buffer, 0, size);
}

const cleanups: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

async function endpoint(): Promise<QuicEndpoint> {
  const ep = await bindTestEndpoint();
  cleanups.push(() => ep.close());
  return ep;
}

test(
  "20 MB stream through a forwarder dropping 2% each way arrives intact",
  { timeout: BOUND_MS + 15_000 },
  async (t) => {
    const data = payload(TOTAL, 0xa71a5);
    const want = createHash("sha256").update(data).digest("hex");

    const server = await endpoint();
    const client = await endpoint();
    const fwd = await UdpForwarder.start({ server: server.local, dropUp: DROP, dropDown: DROP, seed: 20240601 });
    cleanups.push(() => fwd.close());

    // Receiver: hash and count everything the first peer stream carries, until FIN.
    let resolveReceived!: (r: { bytes: number; sha: string }) => void;
    let rejectReceived!: (e: unknown) => void;
    const received = new Promise<{ bytes: number; sha: string }>((res, rej) => {
      resolveReceived = res;
      rejectReceived = rej;
    });
    server.onConnection = (conn) => {
      conn.onStream = (s: QuicStream) => {
        void (async () => {
          const h = createHash("sha256");
          let bytes = 0;
          for (;;) {
            const chunk = await s.read(30_000); // a stall longer than this is a failure
            if (chunk === null) break;
            h.update(chunk);
            bytes += chunk.length;
          }
          resolveReceived({ bytes, sha: h.digest("hex") });
        })().catch(rejectReceived);
      };
    };

    const started = Date.now();
    const run = (async () => {
      const conn = client.connect(fwd.address);
      await conn.established;
      const s = conn.openStream();
      for (let off = 0; off < TOTAL; off += CHUNK) await s.write(data.subarray(off, Math.min(off + CHUNK, TOTAL)));
      await s.end();
      const r = await received;
      const ms = Date.now() - started;
      conn.close(0, "done");
      return { ...r, ms };
    })();
    run.catch(() => {});

    const r = await within(run, BOUND_MS, () =>
      new Error(
        `20 MB transfer did not finish within ${BOUND_MS / 1000} s (up ${JSON.stringify(fwd.up)}, down ${
          JSON.stringify(fwd.down)
        })`,
      ));
    assert.ok(r);
    assert.equal(r.bytes, TOTAL, "byte count");
    assert.equal(r.sha, want, "SHA-256 of the received bytes");

    const mbps = TOTAL / 1e6 / (r.ms / 1000);
    t.diagnostic(`20 MB with ${DROP * 100}% loss each way: ${(r.ms / 1000).toFixed(2)} s, ${mbps.toFixed(1)} MB/s`);
    t.diagnostic(
      `client→server: forwarded ${fwd.up.forwarded}, dropped ${fwd.up.dropped} (${
        ((100 * fwd.up.dropped) / (fwd.up.forwarded + fwd.up.dropped)).toFixed(2)
      }%)`,
    );
    t.diagnostic(
      `server→client: forwarded ${fwd.down.forwarded}, dropped ${fwd.down.dropped} (${
        ((100 * fwd.down.dropped) / (fwd.down.forwarded + fwd.down.dropped)).toFixed(2)
      }%)`,
    );
    assert.ok(fwd.up.dropped > 0, "the forwarder dropped client→server datagrams");
    assert.ok(fwd.down.dropped > 0, "the forwarder dropped server→client datagrams");
  },
);
