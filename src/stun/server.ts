/**
 * STUN server on the QUIC port (docs/protocol.md#stun): relay and bootstrap nodes answer Binding requests with
 * the source's XOR-MAPPED-ADDRESS, so an Atlas network needs no third-party STUN server.
 * Rate limited per source IP with a token bucket kept in a bounded map.
 */
import { type SockAddr, unmapHost } from "../transport/addr.ts";
import type { QuicEndpoint } from "../transport/endpoint.ts";
import {
  BINDING_REQUEST,
  BINDING_RESPONSE,
  createMessage,
  decodeMessage,
  encodeMessage,
  fingerprintOk,
  messageType,
} from "./codec.ts";
import { addStunHandler } from "./hook.ts";

export interface StunServerOptions {
  /** Binding answers per source IP per second (bucket refill rate, burst the same). Default 20. */
  perIpPerSecond?: number;
  /** Source IPs tracked at once; the least recently seen is dropped beyond it. Default 10 000. */
  maxTrackedIps?: number;
}

export interface StunServerHandle {
  readonly stats: { answered: number; limited: number; malformed: number };
  stop(): void;
}

interface Bucket {
  tokens: number;
  at: number;
}

export function serveStun(endpoint: QuicEndpoint, opts: StunServerOptions = {}): StunServerHandle {
  const rate = opts.perIpPerSecond ?? 20;
  const maxIps = opts.maxTrackedIps ?? 10_000;
  const buckets = new Map<string, Bucket>();
  const stats = { answered: 0, limited: 0, malformed: 0 };

  const allow = (ip: string): boolean => {
    const now = Date.now();
    let b = buckets.get(ip);
    if (b) {
      buckets.delete(ip); // re-insert: Map order is least recently seen first
      b.tokens = Math.min(rate, b.tokens + ((now - b.at) / 1000) * rate);
      b.at = now;
    } else {
      b = { tokens: rate, at: now };
      while (buckets.size >= maxIps) buckets.delete(buckets.keys().next().value!);
    }
    buckets.set(ip, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  };

  const remove = addStunHandler(endpoint, (packet: Uint8Array, from: SockAddr) => {
    if (messageType(packet) !== BINDING_REQUEST) return false;
    if (!allow(unmapHost(from.host))) {
      stats.limited++;
      return true;
    }
    const req = decodeMessage(packet);
    if (!req || !fingerprintOk(req)) {
      stats.malformed++;
      return true;
    }
    const res = createMessage(BINDING_RESPONSE, req.transactionId);
    res.addXorAddress(unmapHost(from.host), from.port);
    res.addFingerprint();
    endpoint.sendRaw(encodeMessage(res), from);
    stats.answered++;
    return true;
  });
  return { stats, stop: remove };
}
