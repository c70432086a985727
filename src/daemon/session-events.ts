/**
 * Session events for subscribers (docs/protocol.md#control-socket-cli--daemon): a peer's first session opened
 * (`session_up`), its last one closed (`session_down`), or the path to it changed (`path_changed`:
 * a relayed session replaced by a hole-punched one, or back). A peer with several sessions at once
 * (rivals being settled, a relayed one in its grace period) is one peer: only changes are told.
 */
import type { AtlasNode } from "../net/node.ts";
import type { Session } from "../net/session.ts";
import { unixNow } from "../util/time.ts";
import { sessionInfo } from "./ops.ts";
import type { SessionEventView } from "./shapes.ts";

/** What counts as the path: direct or through which relay (hole-punched or not is told, not compared). */
const pathOf = (s: Session) => `${s.path}|${s.relay ?? ""}`;

/** Call `emit` for every session event from now on; returns the removal function. */
export function watchSessions(node: AtlasNode, emit: (e: SessionEventView) => void): () => void {
  // Per peer with a live session, the session last told and its path: bounded by the live sessions.
  const told = new Map<string, { session: Session; path: string }>();
  const tell = (event: SessionEventView["event"], id: string, s: Session | null, reason: string | null) =>
    emit({ event, node_id: id, session: s ? sessionInfo(s) : null, reason, at: unixNow() });
  const opened = (s: Session) => {
    const id = s.nodeId;
    const before = told.get(id)?.path;
    told.set(id, { session: s, path: pathOf(s) });
    if (before === undefined) tell("session_up", id, s, null);
    else if (before !== pathOf(s)) tell("path_changed", id, s, null);
    void s.done.then((reason) => {
      const now = node.liveSession(id);
      if (now && now !== s) {
        if (told.get(id)?.path !== pathOf(now)) tell("path_changed", id, now, null);
        told.set(id, { session: now, path: pathOf(now) });
        return;
      }
      // The last session told about says session_down, with its own reason: a retired relayed
      // session that finishes closing after it (or after the peer is already down) says nothing.
      if (told.get(id)?.session !== s) return;
      told.delete(id);
      tell("session_down", id, null, reason);
    });
  };
  // Told on the next turn: the dialler marks a hole-punched session as such just after it opens.
  return node.onSessionOpen((s) => void setImmediate(() => opened(s)));
}
