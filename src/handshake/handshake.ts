import { randomBytes } from "node:crypto";
import { CLOSE_REASON_WAIT_MS, REFUSAL_FLUSH_MS, REFUSAL_LINGER_MS, REFUSAL_WRITE_MS } from "../config/durations.ts";
import { unixNow } from "../util/time.ts";
import { AtlasError, type ErrorCodeName, ProtocolCode, protocolCodeName, remoteCodeName } from "../errors.ts";
import type { Identity } from "../identity/identity.ts";
import type { OperatorVerdict } from "../operator/verify.ts";
import { verifyEd25519 } from "../identity/keys.ts";
import { peerKeyFromCertificate } from "../identity/cert.ts";
import { nodeIdFromPublicKey } from "../identity/node-id.ts";
import type { QuicConnection } from "../transport/connection.ts";
import { formatAddr } from "../transport/addr.ts";
import { FramedStream } from "../wire/framed-stream.ts";
import {
  type Hello,
  type HelloAck,
  MAX_PAYLOAD,
  type OperatorInfo,
  PRE_HANDSHAKE_MAX_PAYLOAD,
  PROTOCOL_V,
  type TrustLevel,
  type WireMessage,
} from "../wire/messages.ts";
import { WireError } from "../wire/frame.ts";
import { sleep, within } from "../util/time.ts";
import { handshakeSignedBytes, ROLE_INITIATOR, ROLE_RESPONDER } from "./signing.ts";

/** What this node says about itself in Hello/HelloAck. */
export interface LocalCard {
  identity: Identity;
  name: string;
  skills: string[];
  operator?: OperatorInfo;
  wallet?: string;
  listenAddrs: string[];
  relays: string[];
  agent: string;
  /** Protocol features beyond the core (Hello/HelloAck `features`), e.g. `punch/1`. */
  features: string[];
}

/** What the peer proved (identity) and declared (the rest). */
export interface PeerCard {
  nodeId: string;
  publicKey: Uint8Array;
  name: string;
  skills: string[];
  operator?: OperatorInfo;
  wallet?: string;
  listenAddrs: string[];
  relays: string[];
  agent?: string;
  /** What the peer said it speaks beyond the core; an older peer says nothing (empty). */
  features: string[];
  timestamp: number;
  /** The outcome of checking `operator` (docs/protocol.md#operator-binding), set while the trust level is decided. */
  verdict?: OperatorVerdict;
}

export interface HandshakeResult {
  peer: PeerCard;
  /** The trust level this side assigned to the peer. */
  trust: TrustLevel;
  /**
   * Initiator only: settles with VerifyAck — the trust level the responder assigned to us — or
   * rejects with why the responder refused (docs/protocol.md#handshake step 4). The initiator's
   * part ends when Verify is sent, so the session opens without waiting for it; whoever reads the
   * control stream next must wait for this first.
   */
  verifyAck?: Promise<TrustLevel>;
  /** Initiator only: our address as the responder saw it. */
  observedAddr?: string;
  control: FramedStream;
}

export interface HandshakeOptions {
  timeoutMs: number;
  maxDriftS: number;
  now?: () => number;
  /** Trust level for a proven peer (docs/protocol.md#trust-rate-limits-and-bans); both sides compute their own. */
  trustFor: (peer: PeerCard) => TrustLevel | Promise<TrustLevel>;
}

export interface InitiatorOptions extends HandshakeOptions {
  expectedNodeId?: string;
}

export interface ResponderOptions extends HandshakeOptions {
  /** Unix time until which the peer is banned, or null. */
  bannedUntil: (nodeId: string) => number | null | Promise<number | null>;
  /** Only this node may complete the handshake (a relayed connection's `source_id`, docs/protocol.md#relay). */
  expectedNodeId?: string;
  /** What to report as `observed_addr`; null omits it (a relayed path has no real address). */
  observedAddr?: string | null;
}

function fail(code: ErrorCodeName, message: string): AtlasError {
  return new AtlasError(code, message);
}

/** Checks common to Hello and HelloAck (docs/protocol.md#handshake step 2/3); returns the proven card. */
function checkCard(m: Hello | HelloAck, tlsKey: Uint8Array, now: number, maxDrift: number): PeerCard {
  if (m.protocol_v !== PROTOCOL_V) {
    throw fail("ERR_PROTOCOL_VERSION", `unsupported protocol_v ${m.protocol_v} (this node speaks ${PROTOCOL_V})`);
  }
  if (nodeIdFromPublicKey(m.public_key) !== m.node_id) {
    throw fail("ERR_INVALID_IDENTITY", `node_id ${m.node_id.slice(0, 18)}… is not derived from its public key`);
  }
  if (!bytesEqual(m.public_key, tlsKey)) {
    throw fail("ERR_HANDSHAKE_FAILED", `${m.type} key differs from the TLS certificate key`);
  }
  if (Math.abs(m.timestamp - now) > maxDrift) {
    throw fail("ERR_HANDSHAKE_FAILED", `clock drift of ${Math.abs(m.timestamp - now)} s exceeds ${maxDrift} s`);
  }
  return {
    nodeId: m.node_id,
    publicKey: m.public_key,
    name: m.name,
    skills: m.skills,
    operator: m.operator,
    wallet: m.wallet,
    listenAddrs: m.listen_addrs ?? [],
    relays: m.relays ?? [],
    agent: m.agent,
    features: m.features ?? [],
    timestamp: m.timestamp,
  };
}

function tlsPeerKey(conn: QuicConnection): Uint8Array {
  const der = conn.peerCertificate();
  if (!der) throw fail("ERR_HANDSHAKE_FAILED", "peer presented no TLS certificate");
  return peerKeyFromCertificate(der);
}

function cardFields(c: LocalCard) {
  return {
    node_id: c.identity.nodeId,
    name: c.name,
    skills: c.skills,
    operator: c.operator,
    wallet: c.wallet,
    public_key: c.identity.publicKey,
    protocol_v: PROTOCOL_V,
    listen_addrs: c.listenAddrs.length ? c.listenAddrs : undefined,
    relays: c.relays.length ? c.relays : undefined,
    agent: c.agent,
    features: c.features.length ? c.features : undefined,
  };
}

/** Errors that report the peer's own refusal: answering them with an Error frame is pointless. */
const peerErrors = new WeakSet<AtlasError>();
function fromPeer(e: AtlasError): AtlasError {
  peerErrors.add(e);
  return e;
}

/** An Error frame from the peer as a typed error. */
function remoteError(m: WireMessage, during: string): AtlasError {
  if (m.type === "Error") {
    return fromPeer(new AtlasError(remoteCodeName(m.code, m.message), `peer refused the handshake: ${m.message}`));
  }
  if (m.type === "VerifyAck") {
    return fromPeer(
      new AtlasError("ERR_HANDSHAKE_FAILED", `peer rejected the handshake: ${m.reason ?? "no reason given"}`),
    );
  }
  return new AtlasError("ERR_MESSAGE_REJECTED", `unexpected ${m.type} during ${during}`);
}

/** Run `fn` under the handshake deadline (docs/protocol.md#handshake: 10 s, else 1003). */
async function withDeadline<T>(ms: number, fn: (left: () => number) => Promise<T>): Promise<T> {
  const end = Date.now() + ms;
  const left = () => {
    const l = end - Date.now();
    if (l <= 0) throw fail("ERR_HANDSHAKE_TIMEOUT", `handshake not finished within ${ms / 1000} s`);
    return l;
  };
  try {
    return await fn(left);
  } catch (e) {
    if (e instanceof AtlasError && e.code === "ERR_TIMEOUT") {
      throw fail("ERR_HANDSHAKE_TIMEOUT", `handshake not finished within ${ms / 1000} s`);
    }
    throw e;
  }
}

/**
 * Write a handshake message and send it at once (QuicConnection.flush), not at the end of the
 * turn: whatever follows it in this turn (a signature check, the session's set-up) would hold it.
 */
async function sendNow(control: FramedStream, m: WireMessage): Promise<void> {
  await control.write(m);
  control.stream.conn.flush();
}

/** Read one frame or explain why the connection ended instead. */
async function readFrame(
  control: FramedStream,
  conn: QuicConnection,
  left: () => number,
  during: string,
): Promise<WireMessage> {
  let m: WireMessage | null;
  try {
    m = await control.read(left());
  } catch (e) {
    throw await connectionReason(conn, e);
  }
  if (!m) throw await connectionReason(conn, new AtlasError("ERR_RESET", `peer closed the stream during ${during}`));
  return m;
}

/** If the peer closed the connection with an Atlas code, surface that instead of a stream error. */
async function connectionReason(conn: QuicConnection, e: unknown): Promise<unknown> {
  if (e instanceof AtlasError && (e.code === "ERR_RESET" || e.code === "ERR_CLOSED")) {
    const info = await within(conn.closed, CLOSE_REASON_WAIT_MS);
    if (info && info.app && info.code >= 1000) {
      return fromPeer(
        new AtlasError(
          remoteCodeName(info.code, info.reason),
          `peer refused the handshake: ${info.reason || protocolCodeName(info.code)}`,
        ),
      );
    }
  }
  return e;
}

/** Tell the peer why, then close the connection with the same code. */
async function refuse(
  conn: QuicConnection,
  control: FramedStream | null,
  err: AtlasError,
  answered = false,
): Promise<void> {
  const code = err.protocolCode ?? ProtocolCode.ERR_HANDSHAKE_FAILED;
  if (control) {
    try {
      await within(control.end({ type: "Error", code, message: err.message }), REFUSAL_WRITE_MS);
    } catch {
      // peer already gone
    }
  }
  // An Error frame went out (ours, or FramedStream's for an undecodable frame): let it reach the
  // peer before the CONNECTION_CLOSE, which would make quiche drop it if not yet sent.
  if (control || answered) await within(conn.closed, REFUSAL_LINGER_MS);
  else await sleep(REFUSAL_FLUSH_MS);
  conn.close(code, err.message.slice(0, 200));
}

/**
 * Initiator side (docs/protocol.md#handshake steps 1 and 3). Opens the control stream, sends Hello, checks
 * HelloAck, sends Verify, checks the responder's signature, waits for VerifyAck.
 */
export async function initiateHandshake(
  conn: QuicConnection,
  me: LocalCard,
  o: InitiatorOptions,
): Promise<HandshakeResult> {
  const now = o.now ?? unixNow;
  let control: FramedStream | null = null;
  try {
    return await withDeadline(o.timeoutMs, async (left) => {
      await within(
        conn.established,
        left(),
        () => fail("ERR_HANDSHAKE_TIMEOUT", `handshake not finished within ${o.timeoutMs / 1000} s`),
      );
      const tlsKey = tlsPeerKey(conn);
      if (o.expectedNodeId && nodeIdFromPublicKey(tlsKey) !== o.expectedNodeId) {
        throw fail(
          "ERR_INVALID_IDENTITY",
          `peer is ${nodeIdFromPublicKey(tlsKey)}, not the expected ${o.expectedNodeId.slice(0, 18)}…`,
        );
      }
      control = new FramedStream(conn.openStream(), PRE_HANDSHAKE_MAX_PAYLOAD);
      const myChallenge = new Uint8Array(randomBytes(32));
      await sendNow(control, { type: "Hello", ...cardFields(me), timestamp: now(), challenge: myChallenge });
      const ack = await readFrame(control, conn, left, "the handshake");
      if (ack.type !== "HelloAck") throw remoteError(ack, "the handshake");
      const peer = checkCard(ack, tlsKey, now(), o.maxDriftS);
      if (o.expectedNodeId && peer.nodeId !== o.expectedNodeId) {
        throw fail(
          "ERR_INVALID_IDENTITY",
          `peer is ${peer.nodeId}, not the expected ${o.expectedNodeId.slice(0, 18)}…`,
        );
      }
      const sig = me.identity.sign(
        handshakeSignedBytes(ROLE_INITIATOR, me.identity.nodeId, peer.nodeId, ack.challenge),
      );
      // Verify leaves before we check the responder's signature (~0.1 ms of ed25519), which then
      // runs while Verify is on its way: the session still starts only if it is valid. Nothing is
      // given away: TLS already proved the responder holds this key (checkCard), and our
      // signature names that responder and its fresh challenge.
      await sendNow(control, { type: "Verify", signature: sig, challenge: ack.challenge }); // before the check below
      const signed = handshakeSignedBytes(ROLE_RESPONDER, peer.nodeId, me.identity.nodeId, myChallenge);
      if (!verifyEd25519(peer.publicKey, signed, ack.signature)) {
        throw fail("ERR_HANDSHAKE_FAILED", "responder's handshake signature is invalid");
      }
      control.maxPayload = MAX_PAYLOAD;
      conn.verified = true;
      const trust = await o.trustFor(peer);
      const verifyAck = readVerifyAck(conn, control, left());
      verifyAck.catch(() => {}); // a caller that gave up before taking it leaves no unhandled rejection
      return { peer, trust, verifyAck, observedAddr: ack.observed_addr, control };
    });
  } catch (e) {
    const err = e instanceof AtlasError
      ? e
      : new AtlasError("ERR_INTERNAL", `handshake failed: ${(e as Error).message}`);
    if (conn.isOpen) await refuse(conn, toldByPeer(err) ? null : control, err);
    throw err;
  }
}

/**
 * The initiator's last step, after its session has opened (docs/protocol.md#handshake step 4):
 * like a TLS 1.3 client after its Finished, it has proved itself and checked the responder, and
 * an Atlas responder refuses a valid Verify only when something broke on its side. So it does not
 * wait for VerifyAck before using the session; VerifyAck still comes, within the handshake's
 * deadline, or the connection is closed (a refusal arrives as Error, then CONNECTION_CLOSE).
 */
async function readVerifyAck(conn: QuicConnection, control: FramedStream, ms: number): Promise<TrustLevel> {
  try {
    return await withDeadline(ms, async (left) => {
      const va = await readFrame(control, conn, left, "the handshake");
      if (va.type !== "VerifyAck" || va.status !== "ok") throw remoteError(va, "the handshake");
      return va.trust_level ?? "unknown";
    });
  } catch (e) {
    const err = e instanceof AtlasError
      ? e
      : new AtlasError("ERR_INTERNAL", `handshake failed: ${(e as Error).message}`);
    if (conn.isOpen) await refuse(conn, toldByPeer(err) ? null : control, err);
    throw err;
  }
}

/** Errors the peer told us about need no Error frame back. */
function toldByPeer(e: AtlasError): boolean {
  return peerErrors.has(e) || e.code === "ERR_RESET" || e.code === "ERR_CLOSED";
}

/**
 * Responder side (docs/protocol.md#handshake steps 2 and 4), run on the first stream the initiator opens.
 */
export async function acceptHandshake(
  conn: QuicConnection,
  controlStream: FramedStream,
  me: LocalCard,
  o: ResponderOptions,
): Promise<HandshakeResult> {
  const now = o.now ?? unixNow;
  const control = controlStream;
  control.maxPayload = PRE_HANDSHAKE_MAX_PAYLOAD;
  try {
    return await withDeadline(o.timeoutMs, async (left) => {
      const tlsKey = tlsPeerKey(conn);
      const hello = await readFrame(control, conn, left, "the handshake");
      if (hello.type === "Error") throw remoteError(hello, "the handshake");
      if (hello.type !== "Hello") throw fail("ERR_NOT_VERIFIED", `${hello.type} before the handshake completed`);
      const peer = checkCard(hello, tlsKey, now(), o.maxDriftS);
      if (o.expectedNodeId && peer.nodeId !== o.expectedNodeId) {
        throw fail(
          "ERR_INVALID_IDENTITY",
          `peer is ${peer.nodeId.slice(0, 18)}…, not the expected ${o.expectedNodeId.slice(0, 18)}…`,
        );
      }
      const banned = await o.bannedUntil(peer.nodeId);
      if (banned !== null && banned > now()) throw fail("ERR_BANNED", `banned until ${banned}`);
      const myChallenge = new Uint8Array(randomBytes(32));
      const sig = me.identity.sign(
        handshakeSignedBytes(ROLE_RESPONDER, me.identity.nodeId, peer.nodeId, hello.challenge),
      );
      await sendNow(control, {
        type: "HelloAck",
        ...cardFields(me),
        timestamp: now(),
        challenge: myChallenge,
        signature: sig,
        observed_addr: o.observedAddr === undefined ? formatAddr(conn.remote) : (o.observedAddr ?? undefined),
      });
      const v = await readFrame(control, conn, left, "the handshake");
      if (v.type === "Error") throw remoteError(v, "the handshake");
      if (v.type !== "Verify") throw fail("ERR_NOT_VERIFIED", `${v.type} before the handshake completed`);
      if (!bytesEqual(v.challenge, myChallenge)) {
        throw fail("ERR_HANDSHAKE_FAILED", "Verify echoes a different challenge");
      }
      const signed = handshakeSignedBytes(ROLE_INITIATOR, peer.nodeId, me.identity.nodeId, myChallenge);
      if (!verifyEd25519(peer.publicKey, signed, v.signature)) {
        throw fail("ERR_HANDSHAKE_FAILED", "initiator's handshake signature is invalid");
      }
      const trust = await o.trustFor(peer);
      await sendNow(control, { type: "VerifyAck", status: "ok", trust_level: trust }); // before the session set-up
      control.maxPayload = MAX_PAYLOAD;
      conn.verified = true;
      return { peer, trust, control };
    });
  } catch (e) {
    let err = e instanceof AtlasError ? e : new AtlasError("ERR_INTERNAL", `handshake failed: ${(e as Error).message}`);
    if (err instanceof WireError) err = new AtlasError(err.code, err.message); // already answered on the stream
    const answered = e instanceof WireError; // FramedStream wrote its Error frame already
    if (conn.isOpen) await refuse(conn, answered || toldByPeer(err) ? null : control, err, answered);
    throw err;
  }
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}
