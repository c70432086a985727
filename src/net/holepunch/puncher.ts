/**
 * The packets of a hole punch (docs/protocol.md, "Hole punching"): STUN Binding requests whose
 * transaction ID is the attempt's 12-byte nonce, sent from the node's one UDP socket to every
 * candidate address of the peer, on a short schedule. Each outgoing packet makes this side's NAT
 * open a mapping toward that address; the peer does the same at the same moment, so the packets
 * of each side meet an opened mapping on the other.
 *
 * A Binding request carrying a nonce we are punching with is the peer's punch: it is answered with
 * a Binding response (XOR-MAPPED-ADDRESS = where it came from) and its source becomes a candidate,
 * even when it was not among the addresses the peer announced (a symmetric NAT's new port: the
 * peer-reflexive candidate that lets it meet an address-restricted NAT). A response to one of our
 * punches proves the path works both ways. Either makes the source address "reached".
 *
 * The nonce came over the authenticated relayed session, so nobody else can make us answer or
 * add candidates; the direct QUIC connection still runs the full handshake and must authenticate
 * the same node ID.
 */
import { sameAddr, type SockAddr, unmapHost } from "../../transport/addr.ts";
import type { QuicEndpoint } from "../../transport/endpoint.ts";
import {
  BINDING_REQUEST,
  BINDING_RESPONSE,
  createMessage,
  decodeMessage,
  encodeMessage,
  fingerprintOk,
  messageType,
  transactionKey,
} from "../../stun/codec.ts";
import { addStunHandler } from "../../stun/hook.ts";
import { PUNCH_LAST_WAIT_MS, PUNCH_SCHEDULE_MS } from "../../config/durations.ts";

/** How an address was reached: the peer's punch arrived from it, or it answered ours. */
export type ReachKind = "request" | "response";

export interface PunchHandle {
  /** Resolves with the first address the peer was reached at, or null when the schedule ends. */
  readonly reached: Promise<{ addr: SockAddr; kind: ReachKind } | null>;
  /** Every address the peer's punches came from (peer-reflexive candidates included). */
  readonly seen: SockAddr[];
  /** Packets sent so far. */
  readonly sent: number;
  stop(): void;
}

interface Active {
  candidates: SockAddr[];
  seen: SockAddr[];
  onReach(addr: SockAddr, kind: ReachKind): void;
}

const tables = new WeakMap<QuicEndpoint, Map<string, Active>>();

/** The endpoint's table of punches in progress by nonce, hooked into its STUN demux once. */
function tableFor(endpoint: QuicEndpoint): Map<string, Active> {
  const table = tables.get(endpoint);
  if (table) return table;
  const t = new Map<string, Active>();
  tables.set(endpoint, t);
  addStunHandler(endpoint, (packet, from) => {
    if (t.size === 0) return false;
    const type = messageType(packet);
    if (type !== BINDING_REQUEST && type !== BINDING_RESPONSE) return false;
    const active = t.get(transactionKey(packet));
    if (!active) return false;
    const msg = decodeMessage(packet);
    if (!msg || !fingerprintOk(msg)) return true;
    if (type === BINDING_REQUEST) endpoint.sendRaw(bindingResponse(msg.transactionId, from), from);
    active.onReach(from, type === BINDING_REQUEST ? "request" : "response");
    return true;
  }, { first: true });
  return t;
}

function bindingRequest(nonce: Uint8Array): Uint8Array {
  const m = createMessage(BINDING_REQUEST, nonce);
  m.addFingerprint();
  return encodeMessage(m);
}

function bindingResponse(tid: Uint8Array, to: SockAddr): Uint8Array {
  const m = createMessage(BINDING_RESPONSE, tid);
  m.addXorAddress(unmapHost(to.host), to.port);
  m.addFingerprint();
  return encodeMessage(m);
}

/**
 * Punch toward `candidates` with `nonce` (12 bytes) at PUNCH_SCHEDULE_MS offsets from now, and
 * listen for the peer's punches and answers until `stop()` — the caller stops once the direct
 * connection is up or the attempt is over. Addresses the peer's punches come from are punched too.
 */
export function punch(endpoint: QuicEndpoint, nonce: Uint8Array, candidates: SockAddr[]): PunchHandle {
  const table = tableFor(endpoint);
  const key = Buffer.from(nonce).toString("hex");
  const packet = bindingRequest(nonce);
  const timers: ReturnType<typeof setTimeout>[] = [];
  let resolveReached!: (r: { addr: SockAddr; kind: ReachKind } | null) => void;
  const reached = new Promise<{ addr: SockAddr; kind: ReachKind } | null>((r) => (resolveReached = r));
  const handle = {
    reached,
    seen: [] as SockAddr[],
    sent: 0,
    stop(): void {
      for (const t of timers) clearTimeout(t);
      if (table.get(key) === active) table.delete(key);
      resolveReached(null);
    },
  };
  const active: Active = {
    candidates: [...candidates],
    seen: handle.seen,
    onReach(addr, kind) {
      if (!active.candidates.some((c) => sameAddr(c, addr))) active.candidates.push(addr);
      if (kind === "request" && !handle.seen.some((c) => sameAddr(c, addr))) handle.seen.push(addr);
      resolveReached({ addr, kind });
    },
  };
  table.set(key, active);
  const burst = () => {
    for (const c of active.candidates) {
      endpoint.sendRaw(packet, c);
      handle.sent++;
    }
  };
  for (const at of PUNCH_SCHEDULE_MS) timers.push(setTimeout(burst, at));
  timers.push(setTimeout(() => resolveReached(null), PUNCH_SCHEDULE_MS.at(-1)! + PUNCH_LAST_WAIT_MS));
  return handle;
}
