/**
 * The `sessions` table (docs/architecture.md#peer-store): one row per authenticated connection. Open sessions have
 * closed_at NULL; a daemon starting after a crash closes the leftovers with closeAllOpen("crash").
 * `remote_address` is what this node saw; it never touches the peer's advertised address.
 */
import type { InStatement, InValue, Row } from "@libsql/client";
import { type Db, num, numOrNull, secs, str, strOrNull } from "./db.ts";

export interface SessionRow {
  id: number;
  node_id: string;
  direction: "inbound" | "outbound";
  path: "direct" | "relay";
  relay: string | null;
  remote_address: string | null;
  protocol_v: number;
  trust_level: string;
  connected_at: number;
  last_pong_at: number | null;
  missed_pongs: number;
  closed_at: number | null;
  close_reason: string | null;
  /** A direct session opened by hole punching (docs/protocol.md#hole-punching). */
  punched: boolean;
}

export type SessionOpen =
  & Omit<SessionRow, "id" | "closed_at" | "close_reason" | "last_pong_at" | "missed_pongs" | "punched">
  & { punched?: boolean };

export interface SessionFilter {
  /** true: only open sessions; false: only closed ones; absent: both. */
  open?: boolean;
  nodeId?: string;
  /** Most recent first; default unlimited. */
  limit?: number;
}

const COLUMNS =
  "id, node_id, direction, path, relay, remote_address, protocol_v, trust_level, connected_at, last_pong_at, " +
  "missed_pongs, closed_at, close_reason, punched";

const TRUST_LEVELS = new Set(["bootstrap", "unknown", "verified", "relay"]);

function sessionFromRow(r: Row): SessionRow {
  return {
    id: num(r.id),
    node_id: str(r.node_id),
    direction: str(r.direction) as SessionRow["direction"],
    path: str(r.path) as SessionRow["path"],
    relay: strOrNull(r.relay),
    remote_address: strOrNull(r.remote_address),
    protocol_v: num(r.protocol_v),
    trust_level: str(r.trust_level),
    connected_at: num(r.connected_at),
    last_pong_at: numOrNull(r.last_pong_at),
    missed_pongs: num(r.missed_pongs),
    closed_at: numOrNull(r.closed_at),
    close_reason: strOrNull(r.close_reason),
    punched: num(r.punched) === 1,
  };
}

/** The statements of SessionStore.open (a minimal peer row if none, then the session): the last one's rowid is the session ID. */
export function openStatements(s: SessionOpen): InStatement[] {
  const at = secs(s.connected_at);
  const trust = TRUST_LEVELS.has(s.trust_level) ? s.trust_level : "unknown";
  return [
    {
      sql: "INSERT OR IGNORE INTO peers (node_id, first_seen, last_seen, trust_level) VALUES (?, ?, ?, ?)",
      args: [s.node_id, at, at, trust],
    },
    {
      sql:
        `INSERT INTO sessions (node_id, direction, path, relay, remote_address, protocol_v, trust_level, connected_at,
            punched) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      args: [
        s.node_id,
        s.direction,
        s.path,
        s.relay ?? null,
        s.remote_address ?? null,
        Math.trunc(s.protocol_v),
        s.trust_level,
        at,
        s.punched ? 1 : 0,
      ],
    },
  ];
}

export function closeStatement(id: number, reason: string, at: number): InStatement {
  return {
    sql: "UPDATE sessions SET closed_at = ?, close_reason = ? WHERE id = ? AND closed_at IS NULL",
    args: [secs(at), reason, id],
  };
}

export class SessionStore {
  readonly #db: Db;

  constructor(db: Db) {
    this.#db = db;
  }

  /**
   * Record a new session and return its id. sessions.node_id references peers, so a peer with no
   * row yet gets a minimal one (first_seen = last_seen = connected_at) in the same transaction.
   */
  async open(s: SessionOpen): Promise<number> {
    const [, ins] = await this.#db.batch(openStatements(s));
    return num(ins?.lastInsertRowid);
  }

  /** Close one session; a session already closed keeps its first close time and reason. */
  async close(id: number, reason: string, at: number): Promise<void> {
    const st = closeStatement(id, reason, at) as { sql: string; args: InValue[] };
    await this.#db.execute(st.sql, st.args);
  }

  /** Close every open session (crash recovery at daemon start, or shutdown). Returns how many. */
  async closeAllOpen(reason: string, at: number): Promise<number> {
    const rs = await this.#db.execute("UPDATE sessions SET closed_at = ?, close_reason = ? WHERE closed_at IS NULL", [
      secs(at),
      reason,
    ]);
    return rs.rowsAffected;
  }

  /** Close every open session with one peer (it sent Disconnect). Returns how many. */
  async closeForPeer(nodeId: string, reason: string, at: number): Promise<number> {
    const rs = await this.#db.execute(
      "UPDATE sessions SET closed_at = ?, close_reason = ? WHERE node_id = ? AND closed_at IS NULL",
      [secs(at), reason, nodeId],
    );
    return rs.rowsAffected;
  }

  /** A Pong arrived: note when, reset the missed count. */
  async pong(id: number, at: number): Promise<void> {
    await this.#db.execute("UPDATE sessions SET last_pong_at = ?, missed_pongs = 0 WHERE id = ?", [secs(at), id]);
  }

  /** Set the number of consecutive missed Pongs. */
  async missed(id: number, n: number): Promise<void> {
    await this.#db.execute("UPDATE sessions SET missed_pongs = ? WHERE id = ?", [Math.max(0, Math.trunc(n)), id]);
  }

  async get(id: number): Promise<SessionRow | null> {
    const rows = await this.#db.rows(`SELECT ${COLUMNS} FROM sessions WHERE id = ?`, [id]);
    return rows[0] ? sessionFromRow(rows[0]) : null;
  }

  /** Sessions, most recently connected first. */
  async list(filter: SessionFilter = {}): Promise<SessionRow[]> {
    const where: string[] = [];
    const args: InValue[] = [];
    if (filter.open === true) where.push("closed_at IS NULL");
    if (filter.open === false) where.push("closed_at IS NOT NULL");
    if (filter.nodeId !== undefined) {
      where.push("node_id = ?");
      args.push(filter.nodeId);
    }
    let limit = "";
    if (filter.limit !== undefined && filter.limit >= 0) {
      limit = "LIMIT ?";
      args.push(Math.trunc(filter.limit));
    }
    const rows = await this.#db.rows(
      `SELECT ${COLUMNS} FROM sessions ${where.length ? "WHERE " + where.join(" AND ") : ""}
       ORDER BY connected_at DESC, id DESC ${limit}`,
      args,
    );
    return rows.map(sessionFromRow);
  }

  /** How each peer was reached in its latest session (docs/protocol.md#dialing: `direct`, or `relay` and which). */
  async latestPaths(): Promise<Map<string, { path: "direct" | "relay"; relay: string | null; punched: boolean }>> {
    const rows = await this.#db.rows(
      "SELECT node_id, path, relay, punched FROM sessions WHERE id IN (SELECT MAX(id) FROM sessions GROUP BY node_id)",
    );
    return new Map(
      rows.map((r) => [String(r.node_id), {
        path: r.path === "relay" ? "relay" : "direct",
        relay: strOrNull(r.relay),
        punched: num(r.punched) === 1,
      }]),
    );
  }
}
