/**
 * The node's database (`state/peers.db`, SPEC §8) behind a typed API: nothing outside
 * src/store/ sees SQL. `openStore` creates, checks and migrates; `close()` releases every handle.
 * Errors are `AtlasError("ERR_STORE")` with a one-line message.
 */
import { openDatabase } from "./db.ts";
import { PeerStore } from "./peers.ts";
import { SessionStore } from "./sessions.ts";
import { DeliveryStore, InboxStore, OutboxStore } from "./messages.ts";

export { SCHEMA_VERSION } from "./migrations.ts";
export { PeerStore } from "./peers.ts";
export type { FailureKind, PeerFilter, PeerRow, PeerUpdate, TrustLevel } from "./peers.ts";
export { SessionStore } from "./sessions.ts";
export type { SessionFilter, SessionOpen, SessionRow } from "./sessions.ts";
export { DeliveryStore, InboxStore, OutboxStore } from "./messages.ts";
export type {
  DeliveryFilter,
  DeliveryOutcome,
  DeliveryRecord,
  DeliveryRow,
  DeliveryStatus,
  InboxFilter,
  InboxMessage,
  InboxRow,
  OutboxEnqueue,
  OutboxRow,
  OutboxStatus,
} from "./messages.ts";

export interface Store {
  peers: PeerStore;
  sessions: SessionStore;
  outbox: OutboxStore;
  inbox: InboxStore;
  deliveries: DeliveryStore;
  /**
   * Every later call fails with ERR_STORE at once; the returned promise settles (never rejects)
   * once the WAL is checkpointed and the connection released. Idempotent. Callers that cannot
   * wait may ignore it: an unfinished checkpoint is redone by SQLite on the next open.
   */
  close(): Promise<void>;
  readonly path: string;
}

/** Open (creating the parent directory 0700 and the file 0600 if needed) and migrate. */
export async function openStore(path: string): Promise<Store> {
  const db = await openDatabase(path);
  return {
    peers: new PeerStore(db),
    sessions: new SessionStore(db),
    outbox: new OutboxStore(db),
    inbox: new InboxStore(db),
    deliveries: new DeliveryStore(db),
    close: () => db.close(),
    path,
  };
}
