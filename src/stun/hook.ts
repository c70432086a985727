import type { SockAddr } from "../transport/addr.ts";
import type { QuicEndpoint } from "../transport/endpoint.ts";

/** A STUN datagram handler: returns true when it consumed the packet. */
export type StunHandler = (packet: Uint8Array, from: SockAddr) => boolean;

const chains = new WeakMap<QuicEndpoint, StunHandler[]>();

/**
 * Add a handler to the endpoint's single `onStun` hook. Handlers run in order until one consumes
 * the packet; whatever `onStun` was set before us stays last in the chain, so the STUN client and
 * server (and any other user) share one socket. `first` puts the handler ahead of the others.
 * Returns the removal function.
 */
export function addStunHandler(endpoint: QuicEndpoint, h: StunHandler, o: { first?: boolean } = {}): () => void {
  let chain = chains.get(endpoint);
  if (!chain) {
    const list: StunHandler[] = [];
    chain = list;
    chains.set(endpoint, list);
    const previous = endpoint.onStun;
    endpoint.onStun = (packet, from) => {
      for (const fn of list) if (fn(packet, from)) return;
      previous?.(packet, from);
    };
  }
  // `first`: hole-punch packets are Binding requests too, and must be seen before a STUN server
  // answers every Binding request it gets.
  if (o.first) chain.unshift(h);
  else chain.push(h);
  const list = chain;
  return () => {
    const i = list.indexOf(h);
    if (i >= 0) list.splice(i, 1);
  };
}
