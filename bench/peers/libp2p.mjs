/**
 * The js-libp2p side of the bench's comparison column (bench/phases/libp2p.ts): js-libp2p with
 * `@chainsafe/libp2p-quic` (QUIC v1 + TLS 1.3 with libp2p's certificate extension), installed
 * only here: `npm install --prefix bench/peers` (its own package.json and lockfile; never the
 * root package, never CI). Plain JavaScript so that the root type check does not need it.
 *
 *   node bench/peers/libp2p.mjs server                 prints {"addr": "<multiaddr>"}, serves until stdin
 *                                                      closes; a stdin line "mem" is answered with {"rss": bytes}
 *                                                      (after a forced GC when run with --expose-gc)
 *   node bench/peers/libp2p.mjs client <addr> <json>   runs the loops, prints one JSON line of results;
 *                                                      around the idle connections it prints {"idle": "before"}
 *                                                      and {"idle": "open", "n": N} and waits for a stdin line each
 *
 * The same figures as Atlas's phases, same sizes: dial until the authenticated connection is
 * open (a new connection each time, closed outside the timing); a 32-byte echo round trip on one
 * reused stream; 1 KiB requests ([u32 BE length][payload]) answered with 64 bytes, sequential on
 * one stream and N in flight on one reused stream per worker; bulk: N bytes on one stream, the
 * server answering the count (u64 BE) once the client has closed its side; idle: N connections,
 * one per client node (a peer keeps one connection), while the phase reads the server's RSS.
 *
 * Relayed bulk (Atlas's relay phase, cap off), three processes driven over stdin/stdout, one JSON
 * line answering each stdin line; each serves until its stdin closes:
 *   node bench/peers/libp2p.mjs relay                  a circuit-relay-v2 server with no reservation
 *                                                      limits; prints {"addr": "<multiaddr>/p2p/<id>"};
 *                                                      "cpu" → {"cpuMs"}
 *   node bench/peers/libp2p.mjs listener <relay addr>  reserves a slot on the relay (circuitRelayTransport)
 *                                                      and listens on QUIC; prints {"relayed": "<…/p2p-circuit/p2p/<id>>",
 *                                                      "direct": "<multiaddr>"}; counts every byte read on
 *                                                      /atlas-bench/stream streams: "count" → {"bytes", "cpuMs"}
 *   node bench/peers/libp2p.mjs dialer                 "bulk <addr> <chunk bytes>": a fresh node dials <addr>,
 *                                                      opens one stream and writes until "stop" → {"started",
 *                                                      "limited", "encryption", "muxer"}; "stop" → {"sent"}
 *                                                      (the node is stopped); "cpu" → {"cpuMs"}
 * A relayed connection is upgraded like any libp2p connection over a non-secure transport:
 * Noise + Yamux (libp2p's standard stack), end to end between dialer and listener, inside the
 * relay's two QUIC streams (hop and stop).
 */
// js-libp2p wants Node ≥ 22; Promise.withResolvers is the one thing Node 20 lacks.
if (typeof Promise.withResolvers !== "function") {
  Promise.withResolvers = function () {
    let resolve, reject;
    const promise = new this((a, b) => {
      resolve = a;
      reject = b;
    });
    return { promise, resolve, reject };
  };
}

// A closed QUIC connection can reject a promise nobody awaits inside the transport ("closed by
// peer: 0" after close()); that is not a failure of the figure being measured.
let stray = 0;
let stage = "start";
process.on("unhandledRejection", () => void stray++);

const { createLibp2p } = await import("libp2p");
const { quic } = await import("@chainsafe/libp2p-quic");
const { multiaddr } = await import("@multiformats/multiaddr");

const ECHO = "/atlas-bench/echo/1.0.0";
const REQ = "/atlas-bench/req/1.0.0";
const BULK = "/atlas-bench/bulk/1.0.0";
const STREAM = "/atlas-bench/stream/1.0.0";
const ACK_BYTES = 64;

const bytesOf = (chunk) => (chunk instanceof Uint8Array ? chunk : chunk.subarray());

/** Reads exact-length messages off a stream's 'message' events. */
function reader(stream) {
  let buf = new Uint8Array(0);
  let want = null;
  stream.addEventListener("message", (evt) => {
    const b = bytesOf(evt.data);
    const next = new Uint8Array(buf.length + b.length);
    next.set(buf);
    next.set(b, buf.length);
    buf = next;
    if (want && buf.length >= want.n) {
      const w = want;
      want = null;
      const out = buf.subarray(0, w.n);
      buf = buf.subarray(w.n);
      w.resolve(out);
    }
  });
  return (n) =>
    new Promise((resolve) => {
      if (buf.length >= n) {
        const out = buf.subarray(0, n);
        buf = buf.subarray(n);
        resolve(out);
      } else want = { n, resolve };
    });
}

async function node(listen) {
  return await createLibp2p({
    addresses: { listen: listen ? ["/ip4/127.0.0.1/udp/0/quic-v1"] : [] },
    transports: [quic()],
    connectionManager: { maxConnections: 10_000 },
  });
}

async function server() {
  const n = await node(true);
  await n.handle(ECHO, async (stream) => {
    stream.addEventListener("message", (evt) => stream.send(evt.data));
    await new Promise((r) => stream.addEventListener("close", r));
  });
  const ack = new Uint8Array(4 + ACK_BYTES);
  new DataView(ack.buffer).setUint32(0, ACK_BYTES);
  await n.handle(REQ, async (stream) => {
    const read = reader(stream);
    for (;;) {
      const head = await read(4);
      const len = new DataView(head.buffer, head.byteOffset, 4).getUint32(0);
      await read(len);
      stream.send(ack);
    }
  });
  await n.handle(BULK, async (stream) => {
    let count = 0;
    stream.addEventListener("message", (evt) => void (count += bytesOf(evt.data).length));
    await new Promise((r) => stream.addEventListener("remoteCloseWrite", r));
    const out = new Uint8Array(8);
    new DataView(out.buffer).setBigUint64(0, BigInt(count));
    stream.send(out);
    await stream.close();
  });
  const addr = n.getMultiaddrs().find((a) => a.toString().includes("/quic-v1"));
  process.stdout.write(JSON.stringify({ addr: addr.toString() }) + "\n");
  const lines = (await import("node:readline")).createInterface({ input: process.stdin });
  lines.on("line", async (l) => {
    if (l.trim() !== "mem") return;
    if (typeof globalThis.gc === "function") { for (let i = 0; i < 3; i++) globalThis.gc(); }
    await new Promise((r) => setTimeout(r, 200));
    process.stdout.write(JSON.stringify({ rss: process.memoryUsage().rss }) + "\n");
  });
  lines.on("close", async () => {
    await n.stop();
    process.exit(0);
  });
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : NaN;
};

async function client(addrText, params) {
  const p = {
    connect: 50,
    connectWarmup: 5,
    ping: 2000,
    pingWarmup: 200,
    reqWarmup: 200,
    reqSeq: 2000,
    reqPar: 4000,
    inFlight: 8,
    bulkBytes: 200_000_000,
    bulkRounds: 3,
    bulkChunk: 256 * 1024,
    idleConns: 500,
    idleConcurrency: 16,
    ...params,
  };
  const ma = multiaddr(addrText);
  const n = await node(false);
  const out = {};
  stage = "dial";
  // dial: a new authenticated QUIC connection each time
  const dial = [];
  for (let i = 0; i < p.connectWarmup + p.connect; i++) {
    const t = await timedDial(n, ma);
    if (i >= p.connectWarmup) dial.push(t);
  }
  out.connect = { median: median(dial), n: dial.length };
  stage = "idle";
  // idle (in Atlas's order: after connect, before the transfers): one connection per client
  // node; the phase reads the server's RSS before and after
  const stdin = (await import("node:readline")).createInterface({ input: process.stdin });
  const nextLine = () => new Promise((r) => stdin.once("line", r));
  const idleNodes = [];
  for (let i = 0; i < p.idleConns; i++) idleNodes.push(await node(false));
  process.stdout.write(JSON.stringify({ idle: "before" }) + "\n");
  await nextLine();
  const t0 = performance.now();
  let next = 0;
  const idleConns = [];
  await Promise.all(Array.from({ length: p.idleConcurrency }, async () => {
    while (next < idleNodes.length) idleConns.push(await idleNodes[next++].dial(ma));
  }));
  const openMs = performance.now() - t0;
  process.stdout.write(JSON.stringify({ idle: "open", n: idleConns.length }) + "\n");
  await nextLine();
  out.idle = { n: idleConns.length, openMs };
  stdin.close();
  await Promise.all(idleNodes.map((x) => x.stop()));
  stage = "round trip";
  // The server tears down the closed connections to our peer ID a while after: a connection
  // dialled before that can be closed with them ("closed by peer: 0"). Let it settle.
  await new Promise((r) => setTimeout(r, 1500));
  // round trip: 32-byte echo on one stream
  const conn = await n.dial(ma);
  const ping = await pinger(conn);
  const rtt = [];
  for (let i = 0; i < p.pingWarmup + p.ping; i++) {
    const t = await ping();
    if (i >= p.pingWarmup) rtt.push(t);
  }
  out.rtt = { median: median(rtt), n: rtt.length };
  stage = "requests";
  // requests: 1 KiB → 64 bytes, one reused stream per worker
  const run = async (total, inFlight) => {
    const drive = await requesters(conn, inFlight);
    await drive(p.reqWarmup); // in the timed loop's own shape, like Atlas's
    return await drive(total);
  };
  out.reqSeq = { perSecond: await run(p.reqSeq, 1), n: p.reqSeq };
  out.reqPar = { perSecond: await run(p.reqPar, p.inFlight), n: p.reqPar, inFlight: p.inFlight };
  stage = "bulk";
  // bulk: one stream, the same bytes as Atlas's bulk phase, the server's count ends the timing
  const bulk = [];
  for (let round = 0; round < p.bulkRounds; round++) bulk.push(await bulkOnce(conn, p.bulkBytes, p.bulkChunk));
  out.bulk = { median: median(bulk), rounds: bulk, bytes: p.bulkBytes };
  await n.stop();
  out.strayRejections = stray;
  process.stdout.write(JSON.stringify(out) + "\n");
  process.exit(0);
}

/** One new authenticated connection to `ma`: ms until it is up (closed afterwards). */
async function timedDial(n, ma) {
  const t0 = performance.now();
  const c = await n.dial(ma);
  const t = performance.now() - t0;
  await c.close();
  return t;
}

/** A 32-byte echo on one new stream of `conn`, reused: each call → its round trip in ms. */
async function pinger(conn) {
  const echo = await conn.newStream(ECHO);
  const readEcho = reader(echo);
  const ping = new Uint8Array(32);
  return async () => {
    const t0 = performance.now();
    echo.send(ping);
    await readEcho(32);
    return performance.now() - t0;
  };
}

/**
 * `inFlight` workers, each on a reused stream of `conn`, sending [u32 length][1 KiB] and reading
 * the 64-byte answer: drive(count) → requests per second over `count` requests.
 */
async function requesters(conn, inFlight) {
  const req = new Uint8Array(4 + 1024);
  new DataView(req.buffer).setUint32(0, 1024);
  const workers = await Promise.all(Array.from({ length: inFlight }, async () => {
    const s = await conn.newStream(REQ);
    const read = reader(s);
    return async () => {
      s.send(req);
      await read(4 + ACK_BYTES);
    };
  }));
  return async (count) => {
    let left = count;
    const t0 = performance.now();
    await Promise.all(workers.map(async (w) => {
      while (left-- > 0) await w();
    }));
    return count / ((performance.now() - t0) / 1000);
  };
}

/** `bytes` on a new bulk stream of `conn` until the server's count of them comes back: MB/s. */
async function bulkOnce(conn, bytes, chunkBytes) {
  const chunk = new Uint8Array(chunkBytes).fill(0x7a);
  const s = await conn.newStream(BULK);
  const read = reader(s);
  const t0 = performance.now();
  let sent = 0;
  while (sent < bytes) {
    const part = Math.min(chunk.length, bytes - sent);
    if (!s.send(part === chunk.length ? chunk : chunk.subarray(0, part))) await s.onDrain();
    sent += part;
  }
  const counted = read(8);
  await s.close();
  const c = await counted;
  const got = Number(new DataView(c.buffer, c.byteOffset, 8).getBigUint64(0));
  if (got !== sent) throw new Error(`bulk: server counted ${got} of ${sent} bytes`);
  return sent / 1e6 / ((performance.now() - t0) / 1000);
}

/**
 * Paired rounds (bench/phases/pairs.ts): one connection kept to `addrText`; each stdin line is a
 * measurement, answered with one JSON line — `dial N` (median ms of N new connections), `ping N`
 * (median round trip ms), `req N K` (requests per second, K in flight on K streams kept between
 * lines), `bulk BYTES CHUNK` (MB/s of one bulk stream).
 */
async function rounds(addrText) {
  const ma = multiaddr(addrText);
  const n = await node(false);
  const conn = await n.dial(ma);
  const ping = await pinger(conn);
  const drivers = new Map();
  // dials from a node of their own: n.dial(ma) would hand back `conn`, and closing that would end its streams
  const dialer = await node(false);
  await serveLines({
    dial: async (count) => {
      const xs = [];
      for (let i = 0; i < Number(count); i++) xs.push(await timedDial(dialer, ma));
      return { median: median(xs) };
    },
    ping: async (count) => {
      const xs = [];
      for (let i = 0; i < Number(count); i++) xs.push(await ping());
      return { median: median(xs) };
    },
    bulk: async (bytes, chunk) => ({ mbs: await bulkOnce(conn, Number(bytes), Number(chunk)) }),
    req: async (count, inFlight) => {
      const k = Number(inFlight);
      if (!drivers.has(k)) drivers.set(k, await requesters(conn, k));
      return { perSecond: await drivers.get(k)(Number(count)) };
    },
  }, () => Promise.all([n.stop(), dialer.stop()]));
  process.stdout.write(JSON.stringify({ ready: true }) + "\n");
}

// ---- relayed bulk ----

const cpuMs = () => {
  const c = process.cpuUsage();
  return (c.user + c.system) / 1000;
};

/** Answers each stdin line `cmd args…` with one JSON line from handlers[cmd]; onClose at EOF. */
async function serveLines(handlers, onClose) {
  const lines = (await import("node:readline")).createInterface({ input: process.stdin });
  lines.on("line", async (l) => {
    const [cmd, ...args] = l.trim().split(/\s+/);
    const h = handlers[cmd];
    if (!h) return;
    const out = await Promise.resolve(h(...args)).catch((e) => ({ error: String(e?.stack ?? e) }));
    process.stdout.write(JSON.stringify(out) + "\n");
  });
  lines.on("close", async () => {
    await onClose().catch(() => {});
    process.exit(0);
  });
}

/** The relayed stack (imported here only, so the direct modes do not need these packages). */
async function relayedStack() {
  const [{ noise }, { yamux }, { identify }, relay] = await Promise.all([
    import("@chainsafe/libp2p-noise"),
    import("@chainsafe/libp2p-yamux"),
    import("@libp2p/identify"),
    import("@libp2p/circuit-relay-v2"),
  ]);
  return { noise, yamux, identify, ...relay };
}

async function relayServer() {
  const { identify, circuitRelayServer } = await relayedStack();
  const n = await createLibp2p({
    addresses: { listen: ["/ip4/127.0.0.1/udp/0/quic-v1"] },
    transports: [quic()],
    connectionManager: { maxConnections: 10_000 },
    services: {
      identify: identify(),
      // Atlas's cap-off row: no relay limits. Without applyDefaultLimit: false every relayed
      // connection would be limited (128 KiB of data, 2 min), i.e. closed a few ms into the run.
      relay: circuitRelayServer({ reservations: { applyDefaultLimit: false } }),
    },
  });
  const addr = n.getMultiaddrs().find((a) => a.toString().includes("/quic-v1"));
  process.stdout.write(JSON.stringify({ addr: addr.toString() }) + "\n");
  await serveLines({ cpu: () => ({ cpuMs: cpuMs() }) }, () => n.stop());
}

/** Resolves with the first of `n`'s addresses that `pick` accepts (the reservation's arrive late). */
async function addrOf(n, pick, ms) {
  const end = performance.now() + ms;
  for (;;) {
    const a = n.getMultiaddrs().find((x) => pick(x.toString()));
    if (a) return a.toString();
    if (performance.now() > end) throw new Error(`no such address among ${n.getMultiaddrs().join(" ")}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function relayedNode(listen) {
  const { noise, yamux, identify, circuitRelayTransport } = await relayedStack();
  return await createLibp2p({
    addresses: { listen },
    transports: [quic(), circuitRelayTransport()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionManager: { maxConnections: 10_000 },
    services: { identify: identify() },
  });
}

async function listener(relayAddr) {
  const n = await relayedNode(["/ip4/127.0.0.1/udp/0/quic-v1", `${relayAddr}/p2p-circuit`]);
  let bytes = 0;
  await n.handle(STREAM, (stream) => {
    stream.addEventListener("message", (evt) => void (bytes += bytesOf(evt.data).length));
  }, { runOnLimitedConnection: true });
  const relayed = await addrOf(n, (a) => a.includes("/p2p-circuit/"), 20_000);
  const direct = await addrOf(n, (a) => a.includes("/quic-v1") && !a.includes("/p2p-circuit"), 1000);
  process.stdout.write(JSON.stringify({ relayed, direct }) + "\n");
  await serveLines({ count: () => ({ bytes, cpuMs: cpuMs() }) }, () => n.stop());
}

/**
 * Resolves at the stream's next 'drain' (or 'close'). Not stream.onDrain() in a loop: in
 * @libp2p/utils 7.4.x it keeps its first promise once resolved, so every later call returns at
 * once and the writer fills the write buffer until the heap gives out.
 */
function drained(s) {
  return new Promise((resolve) => {
    const done = () => {
      s.removeEventListener("drain", done);
      s.removeEventListener("close", done);
      resolve();
    };
    s.addEventListener("drain", done);
    s.addEventListener("close", done);
  });
}

/** One bulk run: a fresh node (as Atlas's relayed runs have a fresh dialler node each). */
async function startBulk(addr, chunkBytes) {
  const n = await relayedNode([]);
  const conn = await n.dial(multiaddr(addr));
  // no limits are applied by the relay; set anyway so that a limited connection would still run
  const s = await conn.newStream(STREAM, { runOnLimitedConnection: true });
  const chunk = new Uint8Array(chunkBytes).fill(0x7a);
  let stopped = false;
  let sent = 0;
  const writer = (async () => {
    while (!stopped) {
      if (!s.send(chunk)) await drained(s);
      sent += chunk.length;
    }
  })();
  writer.catch(() => {});
  const info = { started: true, limited: conn.limits != null, encryption: conn.encryption, muxer: conn.multiplexer };
  const stop = async () => {
    stopped = true;
    await writer.catch((e) => {
      throw new Error(`bulk writer failed after ${sent} bytes: ${e?.message ?? e}`);
    });
    s.abort(new Error("bench: run over"));
    await Promise.race([n.stop(), new Promise((r) => setTimeout(r, 5000))]);
    return { sent };
  };
  return { info, stop };
}

async function dialer() {
  let run = null;
  await serveLines({
    bulk: async (addr, chunk) => {
      if (run) throw new Error("bulk: a run is already going");
      run = await startBulk(addr, Number(chunk));
      return run.info;
    },
    stop: async () => {
      const r = run;
      run = null;
      return r ? await r.stop() : { sent: 0 };
    },
    cpu: () => ({ cpuMs: cpuMs() }),
  }, async () => {
    if (run) await run.stop();
  });
  process.stdout.write(JSON.stringify({ ready: true }) + "\n");
}

const [mode, addr, params] = process.argv.slice(2);
if (mode === "server") await server();
else if (mode === "client") {
  await client(addr, JSON.parse(params ?? "{}")).catch((e) => {
    process.stderr.write(`libp2p client failed (${stage}): ${e?.stack ?? e}\n`);
    process.exit(1);
  });
} else if (mode === "rounds") await rounds(addr);
else if (mode === "relay") await relayServer();
else if (mode === "listener") await listener(addr);
else if (mode === "dialer") await dialer();
else {
  process.stderr.write(
    "usage: libp2p.mjs server | client <multiaddr> [json params] | rounds <multiaddr> | relay | listener <relay multiaddr> | dialer\n",
  );
  process.exit(2);
}
