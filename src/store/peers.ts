/**
 * The `peers` table (docs/architecture.md#peer-store): everything this node knows about other nodes, plus failure
 * (docs/protocol.md#dialing) and ban (docs/protocol.md#trust-rate-limits-and-bans) state. Upserts are non-destructive: an empty value (null,
 * undefined, "", [] or an empty key) never erases a known one, so a record learnt from discovery
 * cannot wipe the name learnt in a handshake. Clearing is explicit: clearFailure, setBan(null).
 */
import type { InStatement, InValue, Row } from "@libsql/client";
import { bytesOrNull, type Db, jsonStrings, nowSecs, num, numOrNull, secs, str, strOrNull } from "./db.ts";

export type TrustLevel = "bootstrap" | "unknown" | "verified" | "relay";
export type FailureKind = "unreachable" | "rejected" | "expired" | "reset" | "disconnected";

export interface PeerRow {
  node_id: string;
  public_key: Uint8Array | null;
  address: string | null;
  public_address: string | null;
  relays: string[];
  name: string | null;
  bio: string | null;
  skills: string[];
  operator_username: string | null;
  operator_fid: number | null;
  trust_level: TrustLevel;
  first_seen: number;
  last_seen: number;
  last_failure: string | null;
  last_failure_at: number | null;
  ban_until: number | null;
  violations: number;
  record_seq: number | null;
}

export type PeerUpdate = Partial<Omit<PeerRow, "node_id" | "first_seen">> & { node_id: string };

export interface PeerFilter {
  trust?: string;
  skill?: string;
}

const COLUMNS =
  "node_id, public_key, address, public_address, relays, name, bio, skills, operator_username, operator_fid, " +
  "trust_level, first_seen, last_seen, last_failure, last_failure_at, ban_until, violations, record_seq";

type Kind = "bytes" | "text" | "json" | "int" | "time";

/** Fields an upsert may set, with how each is encoded. last_seen is handled on its own. */
const FIELDS: ReadonlyArray<readonly [keyof PeerUpdate, Kind]> = [
  ["public_key", "bytes"],
  ["address", "text"],
  ["public_address", "text"],
  ["relays", "json"],
  ["name", "text"],
  ["bio", "text"],
  ["skills", "json"],
  ["operator_username", "text"],
  ["operator_fid", "int"],
  ["trust_level", "text"],
  ["last_failure", "text"],
  ["last_failure_at", "time"],
  ["ban_until", "time"],
  ["violations", "int"],
  ["record_seq", "int"],
];

/** The SQL value for a field, or undefined when the update carries nothing for it. */
function encode(kind: Kind, v: unknown): InValue | undefined {
  if (v === null || v === undefined) return undefined;
  switch (kind) {
    case "bytes":
      return v instanceof Uint8Array && v.length > 0 ? v : undefined;
    case "text":
      return typeof v === "string" && v !== "" ? v : undefined;
    case "json":
      return Array.isArray(v) && v.length > 0 ? JSON.stringify(v) : undefined;
    case "int":
      return typeof v === "number" && Number.isFinite(v) ? Math.trunc(v) : undefined;
    case "time":
      return typeof v === "number" && Number.isFinite(v) ? secs(v) : undefined;
  }
}

export function peerFromRow(r: Row): PeerRow {
  return {
    node_id: str(r.node_id),
    public_key: bytesOrNull(r.public_key),
    address: strOrNull(r.address),
    public_address: strOrNull(r.public_address),
    relays: jsonStrings(r.relays),
    name: strOrNull(r.name),
    bio: strOrNull(r.bio),
    skills: jsonStrings(r.skills),
    operator_username: strOrNull(r.operator_username),
    operator_fid: numOrNull(r.operator_fid),
    trust_level: str(r.trust_level) as TrustLevel,
    first_seen: num(r.first_seen),
    last_seen: num(r.last_seen),
    last_failure: strOrNull(r.last_failure),
    last_failure_at: numOrNull(r.last_failure_at),
    ban_until: numOrNull(r.ban_until),
    violations: num(r.violations),
    record_seq: numOrNull(r.record_seq),
  };
}

/** The one statement of PeerStore.upsert, so callers can put it in a batch with others. */
export function upsertStatement(u: PeerUpdate, now: number = nowSecs()): { sql: string; args: InValue[] } {
  const t = secs(now);
  const lastSeen = encode("time", u.last_seen);
  const cols: string[] = ["node_id", "first_seen", "last_seen"];
  const args: InValue[] = [u.node_id, t, lastSeen ?? t];
  const sets: string[] = [];
  if (lastSeen !== undefined) sets.push("last_seen = MAX(last_seen, excluded.last_seen)");
  for (const [key, kind] of FIELDS) {
    const v = encode(kind, u[key]);
    if (v === undefined) continue;
    cols.push(key);
    args.push(v);
    sets.push(
      key === "record_seq"
        ? "record_seq = MAX(COALESCE(record_seq, excluded.record_seq), excluded.record_seq)"
        : `${key} = excluded.${key}`,
    );
  }
  const conflict = sets.length > 0 ? `DO UPDATE SET ${sets.join(", ")}` : "DO NOTHING";
  return {
    sql: `INSERT INTO peers (${cols.join(", ")}) VALUES (${
      cols.map(() => "?").join(", ")
    }) ON CONFLICT (node_id) ${conflict}`,
    args,
  };
}

export function clearFailureStatement(nodeId: string): InStatement {
  return {
    sql: "UPDATE peers SET last_failure = NULL, last_failure_at = NULL WHERE node_id = ? AND last_failure IS NOT NULL",
    args: [nodeId],
  };
}

/**
 * The definition of "never used for anything" (docs/decisions.md, Peer store). NOT IN over
 * uncorrelated subqueries: SQLite builds each list once, where a correlated NOT EXISTS would scan
 * the unindexed outbox and deliveries once per peer. Every subquery column is NOT NULL.
 */
const PRUNE_UNUSED = `DELETE FROM peers WHERE node_id IN (
  SELECT node_id FROM peers
  WHERE trust_level = 'unknown' AND last_seen < ?1 AND (ban_until IS NULL OR ban_until <= ?2)
    AND node_id NOT IN (SELECT node_id FROM sessions WHERE closed_at IS NULL)
    AND node_id NOT IN (SELECT from_id FROM inbox)
    AND node_id NOT IN (SELECT target FROM outbox)
    AND node_id NOT IN (SELECT target FROM deliveries)
  LIMIT ?3)`;

export class PeerStore {
  readonly #db: Db;

  constructor(db: Db) {
    this.#db = db;
  }

  /**
   * Insert or merge a peer, in one statement. On insert first_seen = `now` and last_seen =
   * `u.last_seen ?? now`. On update only the non-empty fields of `u` change; last_seen moves only
   * when `u.last_seen` is given and never backwards; record_seq never decreases.
   */
  async upsert(u: PeerUpdate, now: number = nowSecs()): Promise<void> {
    const st = upsertStatement(u, now);
    await this.#db.execute(st.sql, st.args);
  }

  async get(nodeId: string): Promise<PeerRow | null> {
    const rows = await this.#db.rows(`SELECT ${COLUMNS} FROM peers WHERE node_id = ?`, [nodeId]);
    return rows[0] ? peerFromRow(rows[0]) : null;
  }

  /** Known peers, most recently seen first. `skill` matches one entry of `skills` exactly (case-insensitive). */
  async list(filter: PeerFilter = {}): Promise<PeerRow[]> {
    const where: string[] = [];
    const args: InValue[] = [];
    if (filter.trust !== undefined && filter.trust !== "") {
      where.push("trust_level = ?");
      args.push(filter.trust);
    }
    if (filter.skill !== undefined && filter.skill !== "") {
      where.push("EXISTS (SELECT 1 FROM json_each(peers.skills) WHERE lower(json_each.value) = lower(?))");
      args.push(filter.skill);
    }
    const rows = await this.#db.rows(
      `SELECT ${COLUMNS} FROM peers ${where.length ? "WHERE " + where.join(" AND ") : ""}
       ORDER BY last_seen DESC, node_id`,
      args,
    );
    return rows.map(peerFromRow);
  }

  /** Every known node ID (for prefix resolution). */
  async allIds(): Promise<string[]> {
    const rows = await this.#db.rows("SELECT node_id FROM peers ORDER BY node_id");
    return rows.map((r) => str(r.node_id));
  }

  /** Note a failed dial/session (docs/protocol.md#dialing). No-op for a peer we have no row for. */
  async recordFailure(nodeId: string, kind: FailureKind, at: number): Promise<void> {
    await this.#db.execute("UPDATE peers SET last_failure = ?, last_failure_at = ? WHERE node_id = ?", [
      kind,
      secs(at),
      nodeId,
    ]);
  }

  /** A success clears the last failure. */
  async clearFailure(nodeId: string): Promise<void> {
    const st = clearFailureStatement(nodeId) as { sql: string; args: InValue[] };
    await this.#db.execute(st.sql, st.args);
  }

  /** Peers banned past `now`: the node keeps them in memory so a handshake needs no query. */
  async bans(now: number = nowSecs()): Promise<Map<string, number>> {
    const rows = await this.#db.rows("SELECT node_id, ban_until FROM peers WHERE ban_until > ?", [secs(now)]);
    return new Map(rows.map((r) => [str(r.node_id), num(r.ban_until)]));
  }

  /**
   * Ban until `until` (Unix seconds), creating a minimal row for an unknown peer; `null` lifts
   * the ban and resets the violation count (docs/protocol.md#trust-rate-limits-and-bans). Lifting a ban on an unknown peer is a no-op.
   */
  async setBan(nodeId: string, until: number | null): Promise<void> {
    if (until === null) {
      await this.#db.execute("UPDATE peers SET ban_until = NULL, violations = 0 WHERE node_id = ?", [nodeId]);
      return;
    }
    const t = nowSecs();
    await this.#db.execute(
      `INSERT INTO peers (node_id, first_seen, last_seen, ban_until) VALUES (?, ?, ?, ?)
       ON CONFLICT (node_id) DO UPDATE SET ban_until = excluded.ban_until`,
      [nodeId, t, t, secs(until)],
    );
  }

  /**
   * Delete `unknown` peers never used for anything, last seen before `cutoff` (Unix s), with their
   * closed session rows (ON DELETE CASCADE). Kept whatever their age: other trust levels, a ban
   * in force at `now`, an open session, a message from them (inbox), to them (outbox) or a
   * delivery record naming them. Deletes at most `batch` rows per statement so a first run over
   * a large table lets the event loop in between batches. Returns how many were deleted.
   */
  async pruneUnused(cutoff: number, now: number = nowSecs(), batch = 500): Promise<number> {
    let total = 0;
    for (;;) {
      const rs = await this.#db.execute(PRUNE_UNUSED, [secs(cutoff), secs(now), Math.max(1, Math.trunc(batch))]);
      total += rs.rowsAffected;
      if (rs.rowsAffected < batch) return total;
      // Statements run synchronously in the native layer: let I/O in before the next batch.
      await new Promise((r) => setImmediate(r));
    }
  }

  /** Set the violation count (write-through of the in-memory limiter). No-op for an unknown peer. */
  async setViolations(nodeId: string, n: number): Promise<void> {
    await this.#db.execute("UPDATE peers SET violations = ? WHERE node_id = ?", [Math.max(0, Math.trunc(n)), nodeId]);
  }
}
