/**
 * Test helpers for the docs/protocol.md#handshake handshake: a real responder (an AtlasNode with a temp-dir store,
 * or acceptHandshake on a bare endpoint) and a hand-driven, adversarial initiator that writes
 * its frames itself, so it can lie about anything (node_id, key, timestamp, protocol_v,
 * signatures, frame lengths, stream order).
 *
 * Everything binds 127.0.0.1 port 0; every object has a close() that the tests call in finally.
 */
import { randomBytes } from "node:crypto";
import { uuidv7 } from "uuidv7";
import { type Config, defaultConfig } from "../../src/config/defaults.ts";
import {
  acceptHandshake,
  type HandshakeResult,
  type LocalCard,
  type ResponderOptions,
} from "../../src/handshake/handshake.ts";
import { handshakeSignedBytes, ROLE_INITIATOR } from "../../src/handshake/signing.ts";
import { type Identity, identityFromSeed } from "../../src/identity/identity.ts";
import { AtlasNode } from "../../src/net/node.ts";
import { trustLevelFor } from "../../src/net/trust.ts";
import type { Store } from "../../src/store/index.ts";
import { formatAddr, type SockAddr } from "../../src/transport/addr.ts";
import type { CloseInfo, QuicConnection } from "../../src/transport/connection.ts";
import type { QuicStream } from "../../src/transport/stream.ts";
import { QuicEndpoint } from "../../src/transport/endpoint.ts";
import { transportOptions } from "../../src/transport/options.ts";
import type { Logger } from "../../src/util/log.ts";
import { within } from "../../src/util/time.ts";
import { FramedStream } from "../../src/wire/framed-stream.ts";
import {
  type AtlasMessage,
  type ErrorMsg,
  type Hello,
  type HelloAck,
  MAX_PAYLOAD,
  PROTOCOL_V,
  type Verify,
  type WireMessage,
} from "../../src/wire/messages.ts";
import { waitFor } from "./wait.ts";
import { createTestnet } from "./testnet.ts";

export const LOCALHOST = "127.0.0.1";

/** Deterministic identities: seed = 32 × `tag`. */
export function seededIdentity(tag: number): Identity {
  return identityFromSeed(new Uint8Array(32).fill(tag));
}

export const nowSecs = (): number => Math.floor(Date.now() / 1000);

export function testConfig(configure?: (c: Config) => void): Config {
  const c = defaultConfig();
  c.network.host = LOCALHOST;
  c.network.port = 0;
  configure?.(c);
  return c;
}

export function localCard(identity: Identity, name = "peer"): LocalCard {
  return { identity, name, skills: ["test"], listenAddrs: [], relays: [], agent: "atlas-test/0", features: [] };
}

/** Run `p` with a hard deadline so a broken implementation fails the test instead of hanging it. */
export async function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, rej) => {
    t = setTimeout(() => rej(new Error(`test deadline: ${what} did not happen within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(t);
  }
}

/** A FramedStream that remembers every frame it read and wrote (to inspect a real responder). */
export class RecordingFramedStream extends FramedStream {
  readonly seen: WireMessage[] = [];
  readonly sent: WireMessage[] = [];
  override async read(timeoutMs?: number): Promise<WireMessage | null> {
    const m = await super.read(timeoutMs);
    if (m) this.seen.push(m);
    return m;
  }
  override write(msg: WireMessage): Promise<void> {
    this.sent.push(msg);
    return super.write(msg);
  }
  override end(msg?: WireMessage): Promise<void> {
    if (msg) this.sent.push(msg);
    return super.end(msg);
  }
}

// ---------------------------------------------------------------------------------------------
// Responders

export interface NodeResponder {
  node: AtlasNode;
  store: Store;
  identity: Identity;
  addr: SockAddr;
  /** Request frames the node's Message handler was called with. */
  handled: AtlasMessage[];
  close(): Promise<void>;
}

/** An AtlasNode listening on 127.0.0.1:0 with a temp-dir store and a Message handler. */
export async function startNodeResponder(
  o: { identity?: Identity; configure?: (c: Config) => void; log?: Logger } = {},
): Promise<NodeResponder> {
  const identity = o.identity ?? seededIdentity(0x51);
  const net = createTestnet({ prefix: "atlas-hs-" });
  let node: AtlasNode;
  try {
    node = await net.node({ identity, name: "responder", skills: ["test"], configure: o.configure, log: o.log });
  } catch (e) {
    await net.destroy();
    throw e;
  }
  const handled: AtlasMessage[] = [];
  node.handle("Message", (_s, req) => {
    if (req.type !== "Message") return Promise.resolve(null);
    handled.push(req);
    return Promise.resolve({ type: "MessageAck", msg_id: req.id, status: "received" });
  });
  return {
    node,
    store: node.store,
    identity,
    addr: { host: LOCALHOST, port: node.endpoint.local.port },
    handled,
    close: () => net.destroy(),
  };
}

export interface BareOutcome {
  conn: QuicConnection;
  control: RecordingFramedStream | null;
  result?: HandshakeResult;
  error?: unknown;
}

export interface BareResponder {
  endpoint: QuicEndpoint;
  identity: Identity;
  addr: SockAddr;
  /** Connections accepted so far. */
  conns: QuicConnection[];
  /** Outcome of acceptHandshake on the n-th connection's control stream (resolves once it ends). */
  outcome(n: number): Promise<BareOutcome>;
  /** The recording control stream of the n-th connection, once the initiator opened it. */
  control(n: number): RecordingFramedStream | null;
  close(): Promise<void>;
}

/** acceptHandshake on a bare endpoint (no AtlasNode): every frame of the control stream is recorded. */
export async function startBareResponder(
  identity: Identity,
  opts: Partial<ResponderOptions> = {},
  /** Given each request stream (not the control stream) instead of resetting it. */
  onRequestStream?: (s: QuicStream) => void,
): Promise<BareResponder> {
  const cfg = testConfig();
  const endpoint = await QuicEndpoint.bind({
    ...transportOptions(cfg),
    host: LOCALHOST,
    port: 0,
    tls: { keyPem: identity.keyPem, certPem: identity.certPem },
  });
  const conns: QuicConnection[] = [];
  const controls: (RecordingFramedStream | null)[] = [];
  const outcomes: Promise<BareOutcome>[] = [];
  const card = localCard(identity, "bare-responder");
  endpoint.onConnection = (conn) => {
    const i = conns.length;
    conns.push(conn);
    controls.push(null);
    outcomes.push(
      new Promise<BareOutcome>((resolve) => {
        conn.onStream = (s) => {
          if (s.id !== 0) return onRequestStream ? onRequestStream(s) : s.abort(0);
          const control = new RecordingFramedStream(s);
          controls[i] = control;
          void (async () => {
            try {
              await conn.established;
              const result = await acceptHandshake(conn, control, card, {
                timeoutMs: 5000,
                maxDriftS: cfg.security.max_clock_drift_secs,
                trustFor: (peer) => trustLevelFor(cfg, peer, { path: "direct" }),
                bannedUntil: () => null,
                ...opts,
              });
              resolve({ conn, control, result });
            } catch (error) {
              resolve({ conn, control, error });
            }
          })();
        };
        // No control stream at all: the outcome is the connection's end.
        void conn.closed.then(() => {
          if (!controls[i]) {
            resolve({ conn, control: null, error: new Error("connection closed without a control stream") });
          }
        });
      }),
    );
  };
  return {
    endpoint,
    identity,
    addr: { host: LOCALHOST, port: endpoint.local.port },
    conns,
    outcome: async (n) => {
      await waitFor(`connection ${n} at the bare responder`, () => outcomes.length > n, {
        timeoutMs: 5000,
        intervalMs: 5,
      });
      return outcomes[n]!;
    },
    control: (n) => controls[n] ?? null,
    close: () => endpoint.close(),
  };
}

// ---------------------------------------------------------------------------------------------
// The adversarial initiator

/**
 * A QUIC endpoint presenting `tls` in its certificate, whose connections are driven by hand:
 * the test builds every frame and decides what to send, in which order, on which stream.
 */
export class AdversarialInitiator {
  readonly endpoint: QuicEndpoint;
  readonly tls: Identity;

  private constructor(endpoint: QuicEndpoint, tls: Identity) {
    this.endpoint = endpoint;
    this.tls = tls;
  }

  /** `host`: another loopback address (127.0.0.2…) when a test needs a second source address. */
  static async create(tls: Identity, host = LOCALHOST): Promise<AdversarialInitiator> {
    const endpoint = await QuicEndpoint.bind({
      ...transportOptions(testConfig()),
      host,
      port: 0,
      tls: { keyPem: tls.keyPem, certPem: tls.certPem },
    });
    return new AdversarialInitiator(endpoint, tls);
  }

  /** `127.0.0.1:<port>`: what the responder should report as observed_addr. */
  get localAddr(): string {
    return formatAddr(this.endpoint.local);
  }

  /** A QUIC connection with TLS done, and no stream opened yet. */
  async connect(addr: SockAddr): Promise<RawConn> {
    const conn = this.endpoint.connect(addr);
    // Not kept here: the stress suite makes tens of thousands of connections from one initiator.
    const raw = new RawConn(conn);
    await bounded(conn.established, 5000, "QUIC/TLS handshake");
    return raw;
  }

  async close(): Promise<void> {
    await this.endpoint.close("test done", 200);
  }
}

export class RawConn {
  readonly conn: QuicConnection;
  private ctl: FramedStream | null = null;

  constructor(conn: QuicConnection) {
    this.conn = conn;
  }

  /** The control stream (stream 0): opened on first use. Reads up to 4 MiB (we are the judge). */
  get control(): FramedStream {
    this.ctl ??= new FramedStream(this.conn.openStream(), MAX_PAYLOAD);
    return this.ctl;
  }

  /** A Hello for `who` with a fresh challenge, then `lies` laid over it. */
  static hello(who: Identity, lies: Partial<Omit<Hello, "type">> = {}): Hello {
    return {
      type: "Hello",
      node_id: who.nodeId,
      name: "initiator",
      skills: ["test"],
      public_key: who.publicKey,
      protocol_v: PROTOCOL_V,
      timestamp: nowSecs(),
      challenge: new Uint8Array(randomBytes(32)),
      agent: "atlas-test/0",
      ...lies,
    };
  }

  /** The honest Verify: `who`'s signature over the domain-separated bytes for the HelloAck's challenge. */
  static verify(who: Identity, ack: HelloAck): Verify {
    const signature = who.sign(handshakeSignedBytes(ROLE_INITIATOR, who.nodeId, ack.node_id, ack.challenge));
    return { type: "Verify", signature, challenge: ack.challenge };
  }

  async send(m: WireMessage): Promise<void> {
    await this.control.write(m);
  }

  /** Write raw bytes on the control stream (frames the encoder would refuse to build). */
  async sendRaw(bytes: Uint8Array): Promise<void> {
    await this.control.stream.write(bytes);
  }

  /** The next control frame; fails the test if none comes within `ms`. */
  async read(ms = 5000): Promise<WireMessage | null> {
    return await this.control.read(ms);
  }

  async readHelloAck(ms = 5000): Promise<HelloAck> {
    const m = await this.read(ms);
    if (!m || m.type !== "HelloAck") {
      throw new Error(`expected HelloAck, got ${m ? `${m.type} ${JSON.stringify(describe(m))}` : "end of stream"}`);
    }
    return m;
  }

  /** Hello → HelloAck → Verify → VerifyAck, honestly, as `who` (who must be the TLS identity). */
  async completeHandshake(
    who: Identity,
  ): Promise<{ hello: Hello; ack: HelloAck; verify: Verify; verifyAck: WireMessage | null }> {
    const hello = RawConn.hello(who);
    await this.send(hello);
    const ack = await this.readHelloAck();
    const verify = RawConn.verify(who, ack);
    await this.send(verify);
    const verifyAck = await this.read();
    return { hello, ack, verify, verifyAck };
  }

  /** Open a request stream and write one frame on it (no FIN unless `fin`). */
  async openRequest(m: WireMessage, fin = true): Promise<FramedStream> {
    const fs = new FramedStream(this.conn.openStream(), MAX_PAYLOAD);
    if (fin) await fs.end(m);
    else await fs.write(m);
    return fs;
  }

  /**
   * The responder's refusal: the Error frame on the control stream (skipping nothing: any other
   * frame first is a failure), then the connection's end. Bounded by `ms`.
   */
  async expectRefusal(
    ms = 5000,
  ): Promise<{ error: ErrorMsg; close: CloseInfo; afterError: WireMessage | null | Error }> {
    const m = await this.read(ms);
    if (!m || m.type !== "Error") {
      throw new Error(
        `expected an Error frame, got ${m ? `${m.type} ${JSON.stringify(describe(m))}` : "end of stream"}`,
      );
    }
    // After the Error frame: FIN (refuse uses end()) or the connection's close.
    let afterError: WireMessage | null | Error;
    try {
      afterError = await this.control.read(ms);
    } catch (e) {
      afterError = e as Error;
    }
    const close = await bounded(this.conn.closed, ms, "connection close after the Error frame");
    return { error: m, close, afterError };
  }

  /**
   * Watch a stream's send side as quiche sees it: before each turn of the connection's driver
   * (after quiche has taken in the received packets, before the stream is read), record what
   * `streamCapacity(id)` throws. A peer's STOP_SENDING shows as "StreamStopped(<code>)". This
   * samples the transport's internals on purpose: once the FIN is read the stream is collected,
   * and the peer's CONNECTION_CLOSE follows within ~20 ms, so a write cannot observe it reliably.
   */
  watchSendSide(id: number): string[] {
    const seen: string[] = [];
    const conn = this.conn;
    const turn = conn.process.bind(conn);
    conn.process = () => {
      try {
        conn.native.streamCapacity(id);
      } catch (e) {
        const m = String((e as Error).message ?? e);
        if (seen[seen.length - 1] !== m) seen.push(m);
      }
      turn();
    };
    return seen;
  }

  /** Wait (bounded) for the connection to end. */
  async closedWithin(ms: number): Promise<CloseInfo | undefined> {
    return await within(this.conn.closed, ms);
  }

  close(): void {
    this.conn.close(0, "test done");
  }
}

/** A Message request frame from `from` to `to`. */
export function messageFrame(from: string, to: string, body = '{"hello":"world"}'): AtlasMessage {
  return { type: "Message", id: `msg_${uuidv7()}`, from, to, timestamp: nowSecs(), body };
}

/** Short printable form of a frame for failure messages (bytes as lengths). */
export function describe(m: WireMessage): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(m)) out[k] = v instanceof Uint8Array ? `<${v.length} bytes>` : v;
  return out;
}
