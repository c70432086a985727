/**
 * The node's database (`state/peers.db`, docs/architecture.md#peer-store) behind a typed API: nothing outside
 * src/store/ sees SQL. `openStore` creates, checks and migrates; `close()` releases every handle.
 * Errors are `AtlasError("ERR_STORE")` with a one-line message.
 */
import { openDatabase } from "./db.ts";
import { SideDb } from "./side-db.ts";
import { BatchWriter } from "./batch-writer.ts";
import { clearFailureStatement, PeerStore, type PeerUpdate, upsertStatement } from "./peers.ts";
import { closeStatement, openStatements, type SessionOpen, SessionStore } from "./sessions.ts";
import { num } from "./db.ts";
import { AtlasError } from "../errors.ts";
import { SESSION_ROWS_LINGER_MS } from "../config/durations.ts";
import { DeliveryStore } from "./deliveries.ts";
import { InboxStore } from "./inbox.ts";
import { OutboxStore } from "./outbox.ts";

export { SCHEMA_VERSION } from "./migrations.ts";
export { PeerStore } from "./peers.ts";
export type { FailureKind, PeerFilter, PeerRow, PeerUpdate, TrustLevel } from "./peers.ts";
export { SessionStore } from "./sessions.ts";
export type { SessionFilter, SessionOpen, SessionRow } from "./sessions.ts";
export { DeliveryStore } from "./deliveries.ts";
export type { DeliveryFilter, DeliveryOutcome, DeliveryRecord, DeliveryRow, DeliveryStatus } from "./deliveries.ts";
export { InboxStore } from "./inbox.ts";
export type { InboxFilter, InboxMessage, InboxRow } from "./inbox.ts";
export { OutboxStore } from "./outbox.ts";
export type { OutboxEnqueue, OutboxHead, OutboxRow, OutboxStatus } from "./outbox.ts";

export interface Store {
  peers: PeerStore;
  sessions: SessionStore;
  outbox: OutboxStore;
  inbox: InboxStore;
  deliveries: DeliveryStore;
  /**
   * A session began: merge the peer, clear its last failure, open the session row — one
   * transaction, written behind (batch-writer.ts: batched per turn, on a second connection
   * without fsync). Resolves with the session ID once committed.
   */
  recordSessionOpen(peer: PeerUpdate, session: SessionOpen, now: number): Promise<number>;
  /** A session ended: close its row and note when the peer was last seen, in one transaction, written behind. */
  recordSessionClose(id: number, nodeId: string, reason: string, now: number): Promise<void>;
  /** Batches the session writer has committed (tests, diagnostics). */
  readonly sessionBatches: number;
  /**
   * Every later call fails with ERR_STORE at once; the returned promise settles (never rejects)
   * once the WAL is checkpointed and the connection released. Idempotent. Callers that cannot
   * wait may ignore it: an unfinished checkpoint is redone by SQLite on the next open.
   */
  close(): Promise<void>;
  readonly path: string;
}

/** A connection opened at its first use (and again after a failed open); `close` closes it if open. */
function lazyConnection(open: () => Promise<SideDb>): { get: () => Promise<SideDb>; close: () => Promise<void> } {
  let conn: Promise<SideDb> | null = null;
  return {
    get: () =>
      conn ??= open().catch((e) => {
        conn = null;
        throw e;
      }),
    close: async () => {
      await conn?.then((d) => d.close({ checkpoint: false }), () => {});
    },
  };
}

/** Open (creating the parent directory 0700 and the file 0600 if needed) and migrate. */
export async function openStore(path: string): Promise<Store> {
  const db = await openDatabase(path);
  // The bookkeeping connection (no fsync) carries two writers: outbox outcomes, committed at the
  // next turn, and session rows, which linger (SESSION_ROWS_LINGER_MS); the outbox worker's reads
  // and claims run on it directly. Its batches are synchronous transactions, so none interleave.
  const side = lazyConnection(() => SideDb.open(path));
  const writer = new BatchWriter(side.get);
  const sessionRows = new BatchWriter(side.get, { lingerMs: SESSION_ROWS_LINGER_MS });
  const closeSide = async () => {
    await Promise.all([sessionRows.close(), writer.close()]);
    await side.close();
  };
  // Messages (inbox inserts, outbox retry schedules) on a third connection, durable (FULL) like
  // the main one, with its statements prepared once: an inbox batch commits in about half the
  // time it took through @libsql/client (bench/RESULTS.md, item 11).
  const durable = lazyConnection(() => SideDb.open(path, { synchronous: "FULL" }));
  const messages = new BatchWriter(durable.get);
  const closeMessages = async () => {
    await messages.close();
    await durable.close();
  };
  return {
    peers: new PeerStore(db),
    sessions: new SessionStore(db),
    outbox: new OutboxStore(db, messages, writer, side.get),
    inbox: new InboxStore(db, messages),
    deliveries: new DeliveryStore(db),
    async recordSessionOpen(peer, session, now) {
      if (db.closed) throw new AtlasError("ERR_STORE", `database ${path} is closed`);
      const rs = await sessionRows.write([
        upsertStatement(peer, now),
        clearFailureStatement(peer.node_id),
        ...openStatements(session),
      ]);
      return num(rs.at(-1)?.lastInsertRowid);
    },
    async recordSessionClose(id, nodeId, reason, now) {
      if (db.closed) throw new AtlasError("ERR_STORE", `database ${path} is closed`);
      await sessionRows.write([
        closeStatement(id, reason, now),
        upsertStatement({ node_id: nodeId, last_seen: now }, now),
      ]);
    },
    get sessionBatches() {
      return sessionRows.batches;
    },
    // Session rows queued behind first, then the main connection checkpoints the shared WAL.
    close: () => db.close({ after: Promise.all([closeSide(), closeMessages()]).then(() => {}) }),
    path,
  };
}
