/**
 * Ordered forward migrations of `state/peers.db` (docs/architecture.md#peer-store). Migration N brings a database from
 * `PRAGMA user_version` N-1 to N; `SCHEMA_VERSION` is the version this build writes. Never edit a
 * migration that has shipped: append a new one. Each runs inside one write transaction together
 * with its `user_version` bump (see db.ts), so a crash leaves either the old or the new schema.
 *
 * Conventions: timestamps are INTEGER Unix seconds; JSON arrays are TEXT; `public_key` is a BLOB.
 */

export interface Migration {
  /** 1-based, equal to its position in MIGRATIONS + 1. */
  readonly version: number;
  readonly name: string;
  /** Statements run in order, in one transaction. */
  readonly statements: readonly string[];
  /** Tables this migration creates: used to sanity-check an existing database. */
  readonly tables: readonly string[];
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "peers and sessions",
    tables: ["peers", "sessions"],
    statements: [
      `CREATE TABLE peers (
        node_id           TEXT PRIMARY KEY NOT NULL,
        public_key        BLOB,
        address           TEXT,
        public_address    TEXT,
        relays            TEXT NOT NULL DEFAULT '[]',
        name              TEXT,
        bio               TEXT,
        skills            TEXT NOT NULL DEFAULT '[]',
        operator_username TEXT,
        operator_fid      INTEGER,
        trust_level       TEXT NOT NULL DEFAULT 'unknown'
                          CHECK (trust_level IN ('bootstrap', 'unknown', 'verified', 'relay')),
        first_seen        INTEGER NOT NULL,
        last_seen         INTEGER NOT NULL,
        last_failure      TEXT
                          CHECK (last_failure IN ('unreachable', 'rejected', 'expired', 'reset', 'disconnected')),
        last_failure_at   INTEGER,
        ban_until         INTEGER,
        violations        INTEGER NOT NULL DEFAULT 0,
        record_seq        INTEGER
      )`,
      `CREATE INDEX peers_last_seen ON peers (last_seen DESC)`,
      `CREATE INDEX peers_trust ON peers (trust_level, last_seen DESC)`,
      `CREATE TABLE sessions (
        id             INTEGER PRIMARY KEY AUTOINCREMENT,
        node_id        TEXT NOT NULL REFERENCES peers (node_id) ON DELETE CASCADE,
        direction      TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
        path           TEXT NOT NULL CHECK (path IN ('direct', 'relay')),
        relay          TEXT,
        remote_address TEXT,
        protocol_v     INTEGER NOT NULL,
        trust_level    TEXT NOT NULL,
        connected_at   INTEGER NOT NULL,
        last_pong_at   INTEGER,
        missed_pongs   INTEGER NOT NULL DEFAULT 0,
        closed_at      INTEGER,
        close_reason   TEXT
      )`,
      `CREATE INDEX sessions_node ON sessions (node_id, connected_at DESC)`,
      `CREATE INDEX sessions_open ON sessions (node_id) WHERE closed_at IS NULL`,
    ],
  },
  {
    version: 2,
    name: "outbox, inbox and deliveries",
    tables: ["outbox", "inbox", "deliveries"],
    statements: [
      `CREATE TABLE outbox (
        id              TEXT PRIMARY KEY NOT NULL,
        target          TEXT NOT NULL,
        topic           TEXT,
        reply_to        TEXT,
        body            TEXT NOT NULL,
        created_at      INTEGER NOT NULL,
        next_attempt_at INTEGER NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        expires_at      INTEGER NOT NULL,
        status          TEXT NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'delivering'))
      )`,
      `CREATE INDEX outbox_due ON outbox (status, next_attempt_at)`,
      // seq is the rowid (AUTOINCREMENT: never reused, so it is a safe --follow cursor).
      `CREATE TABLE inbox (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        id          TEXT NOT NULL,
        from_id     TEXT NOT NULL,
        to_id       TEXT NOT NULL,
        timestamp   INTEGER NOT NULL,
        reply_to    TEXT,
        topic       TEXT,
        body        TEXT NOT NULL,
        received_at INTEGER NOT NULL,
        UNIQUE (from_id, id)
      )`,
      `CREATE INDEX inbox_from ON inbox (from_id, seq)`,
      `CREATE INDEX inbox_topic ON inbox (topic, seq)`,
      `CREATE INDEX inbox_received ON inbox (received_at)`,
      `CREATE TABLE deliveries (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        msg_id      TEXT NOT NULL,
        target      TEXT NOT NULL,
        status      TEXT NOT NULL CHECK (status IN ('delivered', 'failed', 'expired')),
        attempts    INTEGER NOT NULL DEFAULT 0,
        path        TEXT,
        finished_at INTEGER NOT NULL,
        detail      TEXT
      )`,
      `CREATE INDEX deliveries_msg ON deliveries (msg_id)`,
      `CREATE INDEX deliveries_finished ON deliveries (finished_at DESC)`,
    ],
  },
  {
    version: 3,
    name: "hole-punched sessions",
    tables: [],
    statements: [
      // 1 for a direct session that hole punching opened (docs/protocol.md#hole-punching): `direct (hole-punched)`.
      `ALTER TABLE sessions ADD COLUMN punched INTEGER NOT NULL DEFAULT 0`,
    ],
  },
  {
    version: 4,
    name: "outbox due index in queue order",
    tables: [],
    statements: [
      // The worker reads due rows in queue order (next_attempt_at, created_at, id). With only
      // (status, next_attempt_at) indexed, a backlog queued within one second was sorted whole on
      // every poll: 3.9 ms for 3,000 rows, holding the sender's loop. This index is that order.
      `DROP INDEX outbox_due`,
      `CREATE INDEX outbox_due ON outbox (status, next_attempt_at, created_at, id)`,
    ],
  },
  {
    version: 5,
    name: "inbox counts per sender",
    tables: ["inbox_counts"],
    statements: [
      // Messages stored per sender, kept by triggers whoever inserts or deletes: the inbox's trim
      // to inbox.max_per_peer deletes the excess oldest rows directly instead of walking the
      // sender's newest max_per_peer index entries to find the boundary (0.5–0.8 ms per commit
      // with a full inbox of 10,000, as much as the commit itself).
      `CREATE TABLE inbox_counts (
        from_id TEXT PRIMARY KEY NOT NULL,
        n       INTEGER NOT NULL
      ) WITHOUT ROWID`,
      `INSERT INTO inbox_counts (from_id, n) SELECT from_id, count(*) FROM inbox GROUP BY from_id`,
      `CREATE TRIGGER inbox_counted AFTER INSERT ON inbox BEGIN
        INSERT INTO inbox_counts (from_id, n) VALUES (NEW.from_id, 1)
          ON CONFLICT (from_id) DO UPDATE SET n = n + 1;
      END`,
      `CREATE TRIGGER inbox_uncounted AFTER DELETE ON inbox BEGIN
        UPDATE inbox_counts SET n = n - 1 WHERE from_id = OLD.from_id;
        DELETE FROM inbox_counts WHERE from_id = OLD.from_id AND n <= 0;
      END`,
    ],
  },
];

/** The schema version this build of Atlas reads and writes. */
export const SCHEMA_VERSION: number = MIGRATIONS.length;
