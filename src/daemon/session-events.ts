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
  // The path last told per peer with a live session: bounded by the live sessions.
  const told = new Map<string, string>();
  const tell = (event: SessionEventView["event"], id: string, s: Session | null, reason: string | null) =>
    emit({ event, node_id: id, session: s ? sessionInfo(s) : null, reason, at: unixNow() });
  const opened = (s: Session) => {
    const id = s.nodeId;
    const before = told.get(id);
    told.set(id, pathOf(s));
    if (before === undefined) tell("session_up", id, s, null);
    else if (before !== pathOf(s)) tell("path_changed", id, s, null);
    void s.done.then((reason) => {
      const now = node.liveSession(id);
      if (!now || now === s) {
        told.delete(id);
        return tell("session_down", id, null, reason);
      }
      if (told.get(id) !== pathOf(now)) {
        told.set(id, pathOf(now));
        tell("path_changed", id, now, null);
      }
    });
  };
  // Told on the next turn: the dialler marks a hole-punched session as such just after it opens.
  return node.onSessionOpen((s) => void setImmediate(() => opened(s)));
}
