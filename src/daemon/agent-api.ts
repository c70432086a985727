/**
 * The agent daemon's local API over its inbox and peers (docs/protocol.md#control-socket-cli--daemon):
 * `subscribe` (push of stored messages and session events), `net.inbox` (stored messages after a
 * seq), `net.message` (one by msg_id) and `net.peers`. Messages travel as MESSAGE lines
 * (./message-json.ts) that clients splice, so bodies stay verbatim.
 */
import type { AtlasNode } from "../net/node.ts";
import type { InboxRow } from "../store/index.ts";
import type { DaemonPart } from "../util/service.ts";
import { messageJson } from "./message-json.ts";
import { watchSessions } from "./session-events.ts";
import { Subscriptions } from "./subscribe.ts";
import { peerView } from "./views.ts";

/** Most messages one `net.inbox` call returns. */
const INBOX_PAGE_MAX = 1000;

const intArg = (v: unknown, dflt: number) => (Number.isSafeInteger(v) && (v as number) >= 0 ? v as number : dflt);
const textArg = (v: unknown) => (typeof v === "string" ? v : undefined);

/** The API as a daemon part; the caller tells `messageStored` of each newly stored message (serveInbox's hook). */
export function agentApi(node: AtlasNode): { part: DaemonPart; messageStored(row: InboxRow): void } {
  const subs = new Subscriptions(node.store);
  watchSessions(node, (e) => subs.event(e));
  const part: DaemonPart = { name: "agent API", handlers: {}, status: () => ({ subscribers: subs.count }) };
  const handlers = part.handlers!;
  handlers["subscribe"] = subs.handler();
  handlers["net.inbox"] = async (a) => {
    const rows = await node.store.inbox.list({
      from: textArg(a.from),
      topic: textArg(a.topic),
      sinceRowid: intArg(a.after, 0),
      limit: Math.min(intArg(a.limit, 100), INBOX_PAGE_MAX),
    });
    return { lines: rows.map(messageJson) };
  };
  handlers["net.message"] = async (a) => {
    const row = await node.store.inbox.byId(String(a.id).toLowerCase());
    return { line: row ? messageJson(row) : null };
  };
  handlers["net.peers"] = async () => {
    const rows = await node.store.peers.list({});
    const paths = await node.store.sessions.latestPaths();
    const now = Math.floor(Date.now() / 1000);
    return rows.map((r) => peerView(r, paths.get(r.node_id), now));
  };
  return { part, messageStored: (row) => subs.messageStored(row) };
}
