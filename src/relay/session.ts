/**
 * Sessions with relays, shared by presence (announce), dialling through a relay and the
 * accepting side: a relay named `host:port` or `atlas_<id>@host:port` (docs/protocol.md#relay `network.relays`,
 * or a peer's advertised home relays).
 */
import { AtlasError } from "../errors.ts";
import { serviceLegs } from "../net/legs.ts";
import type { AtlasNode } from "../net/node.ts";
import type { Session } from "../net/session.ts";
import { type ResolvedNodeRef, resolveNodeRef } from "../net/target.ts";
import { formatAddr } from "../transport/addr.ts";

export type RelayRef = ResolvedNodeRef;

export function resolveRelay(text: string): Promise<RelayRef> {
  return resolveNodeRef(text, "relay");
}

/** A connect to a relay in progress, and how many callers still wait for it. */
interface PendingConnect {
  session: Promise<Session>;
  ctrl: AbortController;
  waiting: number;
  /** Drop it from the connects in progress (settled, or cancelled by all). */
  forget: () => void;
}

/**
 * Connects in progress, per node and relay. Callers that find none live share the one in
 * progress: a second session with the relay would replace the first (docs/protocol.md#dialing, one session per
 * peer) and take every pipe being paired on it along (issue 16: pipes of one dialler to several
 * targets failed with "no answer to RelayConnect (connection closed)").
 */
const connecting = new WeakMap<AtlasNode, Map<string, PendingConnect>>();

/** A live session with the relay (by pinned ID, else by address), or a new one. */
export function relaySession(node: AtlasNode, ref: RelayRef, signal?: AbortSignal): Promise<Session> {
  const live = node.liveSessionAt(ref) ?? serviceLegs(node).liveFor(ref);
  if (live) return Promise.resolve(live);
  let byRelay = connecting.get(node);
  if (!byRelay) connecting.set(node, byRelay = new Map());
  const key = ref.nodeId ?? formatAddr(ref.addr);
  let p = byRelay.get(key);
  if (!p) {
    const ctrl = new AbortController();
    // Over QUIC, or over the relay's TCP leg where UDP gets no answer (docs/protocol.md#the-tcp-leg).
    const session = serviceLegs(node).connect(ref, ctrl.signal);
    const entry: PendingConnect = {
      session,
      ctrl,
      waiting: 0,
      forget: () => void (byRelay.get(key) === entry && byRelay.delete(key)),
    };
    session.then(entry.forget, entry.forget);
    byRelay.set(key, p = entry);
  }
  return wait(p, signal);
}

/**
 * Wait for a shared connect. It is cancelled once every caller waiting for it has cancelled,
 * and forgotten at once: a caller arriving after that starts a connect of its own.
 */
function wait(p: PendingConnect, signal?: AbortSignal): Promise<Session> {
  p.waiting++;
  if (!signal) return p.session;
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      if (--p.waiting === 0) {
        p.forget();
        p.ctrl.abort();
      }
      reject(new AtlasError("ERR_CLOSED", "dial cancelled"));
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    p.session.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** How sessions and outputs name a relay: `atlas_<id>@host:port` (the address it was reached at). */
export function relayLabel(s: Session, ref: RelayRef): string {
  return `${s.nodeId}@${formatAddr(ref.addr)}`;
}
