/**
 * The `inbox` table (docs/architecture.md#peer-store, README.md#commands): messages received, unique by (sender, message id) so that a
 * re-delivery is recognised, kept in storage order (the rowid cursor of `inbox --follow`) and
 * pruned by age and per-sender count.
 */
import type { InValue, Row } from "@libsql/client";
import type { BatchWriter, WriteOrder } from "./batch-writer.ts";
import { type Db, num, secs, str, strOrNull } from "./db.ts";

export interface InboxMessage {
  id: string;
  from_id: string;
  to_id: string;
  timestamp: number;
  reply_to?: string | null;
  topic?: string | null;
  body: string;
  received_at: number;
}

export interface InboxRow {
  /** Storage order, strictly increasing and never reused: a cursor for --follow. */
  rowid: number;
  id: string;
  from_id: string;
  to_id: string;
  timestamp: number;
  reply_to: string | null;
  topic: string | null;
  body: string;
  received_at: number;
}

export interface InboxFilter {
  from?: string;
  topic?: string;
  /** Only rows stored after this rowid (ascending, the first `limit` of them). */
  sinceRowid?: number;
  /** Without sinceRowid: the latest `limit` rows (still returned oldest first). */
  limit?: number;
}

/**
 * Keep sender ?1's newest ?2 messages: delete its oldest beyond that, counted by `inbox_counts`
 * (migration 5, kept by triggers), so the cost is the rows deleted, not the rows kept.
 */
const TRIM_SENDER = `DELETE FROM inbox WHERE seq IN (
  SELECT seq FROM inbox WHERE from_id = ?1 ORDER BY seq
  LIMIT max(0, coalesce((SELECT n FROM inbox_counts WHERE from_id = ?1), 0) - ?2))`;

const INBOX_COLUMNS = "seq, id, from_id, to_id, timestamp, reply_to, topic, body, received_at";

function inboxFromRow(r: Row): InboxRow {
  return {
    rowid: num(r.seq),
    id: str(r.id),
    from_id: str(r.from_id),
    to_id: str(r.to_id),
    timestamp: num(r.timestamp),
    reply_to: strOrNull(r.reply_to),
    topic: strOrNull(r.topic),
    body: str(r.body),
    received_at: num(r.received_at),
  };
}

export class InboxStore {
  readonly #db: Db;
  readonly #writer: BatchWriter;

  constructor(db: Db, writer: BatchWriter) {
    this.#db = db;
    this.#writer = writer;
  }

  /**
   * Store a received message; resolves once committed (group commit: messages stored in the same
   * event-loop turn share one transaction, in call order). False when (from_id, id) is already
   * stored (a re-delivery).
   */
  async insert(m: InboxMessage, order?: WriteOrder): Promise<boolean> {
    return (await this.insertSeq(m, order)) !== null;
  }

  /** As `insert`; the new row's seq, or null for a re-delivery. */
  async insertSeq(m: InboxMessage, order?: WriteOrder): Promise<number | null> {
    const [rs] = await this.#writer.write([{
      sql: `INSERT OR IGNORE INTO inbox (id, from_id, to_id, timestamp, reply_to, topic, body, received_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      args: [
        m.id,
        m.from_id,
        m.to_id,
        secs(m.timestamp),
        m.reply_to ?? null,
        m.topic ?? null,
        m.body,
        secs(m.received_at),
      ],
    }], order);
    return rs && rs.rowsAffected > 0 ? num(rs.lastInsertRowid) : null;
  }

  /**
   * Store a received message and keep its sender's newest `keep` messages, committed together
   * (group commit: the trim runs once per batch and sender, after the batch's inserts).
   * `seq`: the new row's, or null for a re-delivery; `pruned`: rows the batch's trim deleted for
   * this sender. `order`: see WriteOrder.
   */
  async insertAndTrim(
    m: InboxMessage,
    keep: number,
    order?: WriteOrder,
  ): Promise<{ seq: number | null; pruned: number }> {
    const k = Math.max(0, Math.trunc(keep));
    const [seq, trim] = await Promise.all([
      this.insertSeq(m, order),
      this.#writer.writeOnce(`trim ${m.from_id}`, {
        sql: TRIM_SENDER,
        args: [m.from_id, k],
      }).catch(() => null), // the message is stored either way; the next one trims again
    ]);
    return { seq, pruned: trim?.rowsAffected ?? 0 };
  }

  /** Delete messages received before `cutoff` (Unix s, docs/architecture.md#peer-store inbox.retention_days). Returns how many. */
  async pruneReceivedBefore(cutoff: number): Promise<number> {
    return (await this.#db.execute("DELETE FROM inbox WHERE received_at < ?", [secs(cutoff)])).rowsAffected;
  }

  /** Keep the newest `keep` messages of each sender (of `fromId` only, when given). Returns how many were deleted. */
  async pruneExcess(keep: number, fromId?: string): Promise<number> {
    const k = Math.max(0, Math.trunc(keep));
    const rs = fromId === undefined
      ? await this.#db.execute(
        `DELETE FROM inbox WHERE seq IN (SELECT seq FROM (SELECT seq, row_number() OVER (PARTITION BY from_id ORDER BY seq DESC) AS rn FROM inbox) WHERE rn > ?)`,
        [k],
      )
      : await this.#db.execute(TRIM_SENDER, [fromId, k]);
    return rs.rowsAffected;
  }

  /** The newest stored message with this ID (IDs are unique per sender), or null. */
  async byId(id: string): Promise<InboxRow | null> {
    const rows = await this.#db.rows(`SELECT ${INBOX_COLUMNS} FROM inbox WHERE id = ? ORDER BY seq DESC LIMIT 1`, [id]);
    return rows[0] ? inboxFromRow(rows[0]) : null;
  }

  /** The seq of the newest stored message (0 when none): where "only new ones" starts. */
  async latestSeq(): Promise<number> {
    const rows = await this.#db.rows("SELECT MAX(seq) AS seq FROM inbox", []);
    return rows[0]?.seq == null ? 0 : num(rows[0].seq);
  }

  /** Messages in storage order (oldest first). */
  async list(filter: InboxFilter = {}): Promise<InboxRow[]> {
    const where: string[] = [];
    const args: InValue[] = [];
    if (filter.from !== undefined) {
      where.push("from_id = ?");
      args.push(filter.from);
    }
    if (filter.topic !== undefined) {
      where.push("topic = ?");
      args.push(filter.topic);
    }
    const tail = filter.sinceRowid === undefined && filter.limit !== undefined;
    if (filter.sinceRowid !== undefined) {
      where.push("seq > ?");
      args.push(Math.trunc(filter.sinceRowid));
    }
    let limit = "";
    if (filter.limit !== undefined) {
      limit = "LIMIT ?";
      args.push(Math.max(0, Math.trunc(filter.limit)));
    }
    const rows = await this.#db.rows(
      `SELECT ${INBOX_COLUMNS} FROM inbox ${where.length ? "WHERE " + where.join(" AND ") : ""}
       ORDER BY seq ${tail ? "DESC" : "ASC"} ${limit}`,
      args,
    );
    const out = rows.map(inboxFromRow);
    return tail ? out.reverse() : out;
  }
}
