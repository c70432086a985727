/**
 * STUN client (docs/protocol.md#stun): Binding requests (RFC 5389) sent from the node's own QUIC socket, so the
 * mapping a NAT makes is the one peers see; answers come back through the endpoint's STUN demux.
 */
import { randomBytes } from "node:crypto";
import { STUN_INITIAL_RTO_MS } from "../config/durations.ts";
import { AtlasError } from "../errors.ts";
import { formatAddr, resolveAddr, sameAddr, type SockAddr, unmapHost } from "../transport/addr.ts";
import type { QuicEndpoint } from "../transport/endpoint.ts";
import {
  BINDING_ERROR_RESPONSE,
  BINDING_REQUEST,
  BINDING_RESPONSE,
  createMessage,
  decodeMessage,
  encodeMessage,
  fingerprintOk,
  messageType,
  transactionKey,
} from "./codec.ts";
import { addStunHandler } from "./hook.ts";

interface Pending {
  server: SockAddr;
  resolve(a: SockAddr): void;
  reject(e: Error): void;
}

const pendingBy = new WeakMap<QuicEndpoint, Map<string, Pending>>();

/** The endpoint's table of outstanding transactions, hooked into its STUN demux once. */
function pendingFor(endpoint: QuicEndpoint): Map<string, Pending> {
  let m = pendingBy.get(endpoint);
  if (m) return m;
  const table = new Map<string, Pending>();
  m = table;
  pendingBy.set(endpoint, table);
  addStunHandler(endpoint, (packet, from) => {
    const type = messageType(packet);
    if (type !== BINDING_RESPONSE && type !== BINDING_ERROR_RESPONSE) return false;
    const key = transactionKey(packet);
    const p = table.get(key);
    if (!p || !sameAddr(p.server, from)) return false;
    const msg = decodeMessage(packet);
    if (!msg || !fingerprintOk(msg)) return true; // ours but garbled: keep waiting for a retransmission
    if (type === BINDING_ERROR_RESPONSE) {
      p.reject(new AtlasError("ERR_UNREACHABLE", `STUN server ${formatAddr(p.server)} answered with an error`));
      return true;
    }
    const x = msg.getXorAddress();
    if (!x || typeof x.address !== "string" || !Number.isInteger(x.port)) {
      p.reject(new AtlasError("ERR_UNREACHABLE", `STUN server ${formatAddr(p.server)} sent no XOR-MAPPED-ADDRESS`));
      return true;
    }
    p.resolve({ host: unmapHost(x.address), port: x.port });
    return true;
  });
  return m;
}

/**
 * One Binding transaction with `server`: retransmitted at 0, 100, 300, 700 … ms (RTO doubling)
 * until an answer or `timeoutMs`. Resolves to the XOR-MAPPED-ADDRESS (IPv4-mapped shown plain).
 */
export function stunBinding(endpoint: QuicEndpoint, server: SockAddr, timeoutMs: number): Promise<SockAddr> {
  const table = pendingFor(endpoint);
  const tid = new Uint8Array(randomBytes(12));
  const req = createMessage(BINDING_REQUEST, tid);
  req.addFingerprint();
  const packet = encodeMessage(req);
  const key = transactionKey(packet);
  return new Promise<SockAddr>((resolve, reject) => {
    let rto = STUN_INITIAL_RTO_MS;
    let retry: ReturnType<typeof setTimeout> | undefined;
    const finish = () => {
      clearTimeout(retry);
      clearTimeout(deadline);
      table.delete(key);
    };
    const deadline = setTimeout(() => {
      finish();
      reject(new AtlasError("ERR_TIMEOUT", `no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    table.set(key, {
      server,
      resolve: (a) => (finish(), resolve(a)),
      reject: (e) => (finish(), reject(e)),
    });
    const send = () => {
      endpoint.sendRaw(packet, server);
      retry = setTimeout(send, rto);
      rto *= 2;
    };
    send();
  });
}

export interface Discovery {
  address: SockAddr;
  /** The server that answered, as configured. */
  server: string;
}

/**
 * Ask `servers` in order until one answers, everything within `totalTimeoutMs` (`stun.timeout`).
 * Each server gets an equal share of the time left, so a dead first server cannot starve the
 * next. Host names are resolved with resolveAddr (bounded by the same budget). Throws with the
 * reasons of every failure.
 */
export async function discoverPublicAddress(
  endpoint: QuicEndpoint,
  servers: readonly string[],
  totalTimeoutMs: number,
): Promise<Discovery> {
  if (servers.length === 0) throw new AtlasError("ERR_CONFIG", "no STUN server configured");
  const end = Date.now() + totalTimeoutMs;
  const errors: string[] = [];
  for (let i = 0; i < servers.length; i++) {
    const s = servers[i]!;
    const left = end - Date.now();
    if (left <= 0) {
      errors.push(`${s}: not tried (time budget spent)`);
      continue;
    }
    const budget = Math.max(1, Math.floor(left / (servers.length - i)));
    const until = Date.now() + budget;
    try {
      const addr = await withDeadline(
        resolveAddr(s),
        budget,
        () => new AtlasError("ERR_TIMEOUT", `cannot resolve '${s}' in time`),
      );
      const remaining = until - Date.now();
      if (remaining <= 0) throw new AtlasError("ERR_TIMEOUT", "no time left after resolving");
      return { address: await stunBinding(endpoint, addr, remaining), server: s };
    } catch (e) {
      errors.push(`${s}: ${(e as Error).message}`);
    }
  }
  throw new AtlasError("ERR_UNREACHABLE", errors.join("; "));
}

function withDeadline<T>(p: Promise<T>, ms: number, err: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(err()), ms);
    p.then(
      (v) => (clearTimeout(t), resolve(v)),
      (e) => (clearTimeout(t), reject(e)),
    );
  });
}
