/**
 * Sessions with bootstrap nodes for one exchange each. Connections to a bootstrap node are
 * short-lived: a session this module dialled is closed once its last exchange is done (a bootstrap
 * node serving thousands of agents must not hold a connection to each), while a session something
 * else opened is only borrowed and left as it was.
 */
import { AtlasError } from "../errors.ts";
import { serviceLegs } from "../net/legs.ts";
import type { AtlasNode } from "../net/node.ts";
import type { Session } from "../net/session.ts";
import { resolveNodeRef } from "../net/target.ts";
import { DISCONNECT_SHUTDOWN, type WireMessage } from "../wire/messages.ts";

const borrowed = new WeakMap<Session, { users: number; ours: boolean }>();

/**
 * Run `fn` on a session with the bootstrap node `text`: a live one when there is one (by pinned
 * node ID, else by address), otherwise a new dial that is closed again once no caller uses it.
 */
export async function withBootstrap<T>(node: AtlasNode, text: string, fn: (s: Session) => Promise<T>): Promise<T> {
  const t = await resolveNodeRef(text, "bootstrap node");
  let s = node.liveSessionAt(t) ?? serviceLegs(node).liveFor(t);
  let use = s ? borrowed.get(s) : undefined;
  if (!s) {
    s = await serviceLegs(node).connect(t); // QUIC, or the TCP leg where UDP is blocked (docs/protocol.md#the-tcp-leg)
    use = borrowed.get(s);
    if (!use) borrowed.set(s, use = { users: 0, ours: true });
  }
  if (use) use.users++;
  const session = s;
  try {
    return await fn(session);
  } finally {
    if (use && --use.users === 0) {
      borrowed.delete(session);
      if (use.ours && !session.pinned && session.isOpen) {
        void session.disconnect(DISCONNECT_SHUTDOWN, "bootstrap exchange done", "bootstrap_done");
      }
    }
  }
}

/** The bootstrap node's answer `res` to `what`, which must be of type `type` (else ERR_MESSAGE_REJECTED). */
export function expectType<K extends WireMessage["type"]>(
  res: WireMessage,
  type: K,
  what: string,
): Extract<WireMessage, { type: K }> {
  if (res.type !== type) {
    throw new AtlasError("ERR_MESSAGE_REJECTED", `bootstrap node answered ${what} with ${res.type}`);
  }
  return res as Extract<WireMessage, { type: K }>;
}
