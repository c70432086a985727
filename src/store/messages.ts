/**
 * Messaging tables (SPEC §8, §14): `outbox` (queued for delivery), `inbox` (received, unique by
 * (sender, message id)) and `deliveries` (audit log of every outcome).
 *
 * Outbox life cycle: enqueue → due() picks queued rows whose next_attempt_at has come →
 * markDelivering() while an attempt is in flight → markAttempt() on a retryable failure, or
 * complete() on the final outcome, which removes the row and writes its `deliveries` entry in one
 * transaction (nothing lost, nothing logged twice). A crash mid-attempt leaves rows in
 * 'delivering': requeueDelivering() puts them back at start-up.
 */
import type { InValue, Row } from "@libsql/client";
import { type Db, num, secs, str, strOrNull } from "./db.ts";

// ---------------------------------------------------------------------------------------------
// outbox

export type OutboxStatus = "queued" | "delivering";

export interface OutboxRow {
  id: string; // msg_ + UUIDv7
  target: string; // node ID
  topic: string | null;
  reply_to: string | null;
  body: string; // JSON text
  created_at: number;
  next_attempt_at: number;
  attempts: number;
  expires_at: number;
  status: OutboxStatus;
}

export interface OutboxEnqueue {
  id: string;
  target: string;
  topic?: string | null;
  reply_to?: string | null;
  body: string;
  created_at: number;
  expires_at: number;
  /** Default: created_at (deliver at once). */
  next_attempt_at?: number;
}

export type DeliveryStatus = "delivered" | "failed" | "expired";

export interface DeliveryOutcome {
  status: DeliveryStatus;
  finished_at: number;
  path?: string | null;
  detail?: string | null;
  /** Default: the row's attempts, plus one unless the status is 'expired' (the final attempt). */
  attempts?: number;
}

const OUTBOX_COLUMNS = "id, target, topic, reply_to, body, created_at, next_attempt_at, attempts, expires_at, status";

function outboxFromRow(r: Row): OutboxRow {
  return {
    id: str(r.id),
    target: str(r.target),
    topic: strOrNull(r.topic),
    reply_to: strOrNull(r.reply_to),
    body: str(r.body),
    created_at: num(r.created_at),
    next_attempt_at: num(r.next_attempt_at),
    attempts: num(r.attempts),
    expires_at: num(r.expires_at),
    status: str(r.status) as OutboxStatus,
  };
}

export class OutboxStore {
  readonly #db: Db;

  constructor(db: Db) {
    this.#db = db;
  }

  /** Queue a message. A duplicate id is an ERR_STORE error. */
  async enqueue(m: OutboxEnqueue): Promise<void> {
    await this.#db.execute(
      `INSERT INTO outbox (id, target, topic, reply_to, body, created_at, next_attempt_at, attempts, expires_at, status)
       VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, 'queued')`,
      [
        m.id,
        m.target,
        m.topic ?? null,
        m.reply_to ?? null,
        m.body,
        secs(m.created_at),
        secs(m.next_attempt_at ?? m.created_at),
        secs(m.expires_at),
      ],
    );
  }

  async get(id: string): Promise<OutboxRow | null> {
    const rows = await this.#db.rows(`SELECT ${OUTBOX_COLUMNS} FROM outbox WHERE id = ?`, [id]);
    return rows[0] ? outboxFromRow(rows[0]) : null;
  }

  /** Everything still queued or in flight, oldest first. */
  async list(): Promise<OutboxRow[]> {
    const rows = await this.#db.rows(`SELECT ${OUTBOX_COLUMNS} FROM outbox ORDER BY created_at, id`);
    return rows.map(outboxFromRow);
  }

  /** Outbox depth. */
  async count(): Promise<number> {
    const rows = await this.#db.rows("SELECT count(*) AS n FROM outbox");
    return num(rows[0]?.n);
  }

  /** Queued messages whose next attempt is due (expired ones included: the worker decides), soonest first. */
  async due(now: number, limit = 100): Promise<OutboxRow[]> {
    const rows = await this.#db.rows(
      `SELECT ${OUTBOX_COLUMNS} FROM outbox WHERE status = 'queued' AND next_attempt_at <= ?
       ORDER BY next_attempt_at, created_at, id LIMIT ?`,
      [secs(now), Math.max(0, Math.trunc(limit))],
    );
    return rows.map(outboxFromRow);
  }

  /** Claim a queued message for an attempt. False when it is gone or already claimed. */
  async markDelivering(id: string): Promise<boolean> {
    const rs = await this.#db.execute("UPDATE outbox SET status = 'delivering' WHERE id = ? AND status = 'queued'", [
      id,
    ]);
    return rs.rowsAffected > 0;
  }

  /** A retryable attempt failed: count it and schedule the next one. */
  async markAttempt(id: string, nextAttemptAt: number): Promise<void> {
    await this.#db.execute(
      "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, status = 'queued' WHERE id = ?",
      [secs(nextAttemptAt), id],
    );
  }

  /**
   * Final outcome: remove the message and append its `deliveries` entry atomically.
   * Returns false (and records nothing) when the message is not in the outbox.
   */
  async complete(id: string, o: DeliveryOutcome): Promise<boolean> {
    const attempts = o.attempts !== undefined ? "?" : o.status === "expired" ? "attempts" : "attempts + 1";
    const args: InValue[] = [o.status];
    if (o.attempts !== undefined) args.push(Math.trunc(o.attempts));
    args.push(o.path ?? null, secs(o.finished_at), o.detail ?? null, id);
    const [ins] = await this.#db.batch([
      {
        sql: `INSERT INTO deliveries (msg_id, target, status, attempts, path, finished_at, detail)
              SELECT id, target, ?, ${attempts}, ?, ?, ? FROM outbox WHERE id = ?`,
        args,
      },
      { sql: "DELETE FROM outbox WHERE id = ?", args: [id] },
    ]);
    return (ins?.rowsAffected ?? 0) > 0;
  }

  /** Remove a message without recording an outcome. */
  async remove(id: string): Promise<boolean> {
    const rs = await this.#db.execute("DELETE FROM outbox WHERE id = ?", [id]);
    return rs.rowsAffected > 0;
  }

  /** Crash recovery: attempts left in flight go back to the queue. Returns how many. */
  async requeueDelivering(): Promise<number> {
    const rs = await this.#db.execute("UPDATE outbox SET status = 'queued' WHERE status = 'delivering'");
    return rs.rowsAffected;
  }
}

// ---------------------------------------------------------------------------------------------
// inbox

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

  constructor(db: Db) {
    this.#db = db;
  }

  /** Store a received message. False when (from_id, id) is already stored (a re-delivery). */
  async insert(m: InboxMessage): Promise<boolean> {
    const rs = await this.#db.execute(
      `INSERT OR IGNORE INTO inbox (id, from_id, to_id, timestamp, reply_to, topic, body, received_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      [m.id, m.from_id, m.to_id, secs(m.timestamp), m.reply_to ?? null, m.topic ?? null, m.body, secs(m.received_at)],
    );
    return rs.rowsAffected > 0;
  }

  /** Delete messages received before `cutoff` (Unix s, SPEC §8 inbox.retention_days). Returns how many. */
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
      : await this.#db.execute(
        `DELETE FROM inbox WHERE from_id = ? AND seq <= (SELECT seq FROM inbox WHERE from_id = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)`,
        [fromId, fromId, k],
      );
    return rs.rowsAffected;
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

// ---------------------------------------------------------------------------------------------
// deliveries

export interface DeliveryRow {
  id: number;
  msg_id: string;
  target: string;
  status: DeliveryStatus;
  attempts: number;
  path: string | null;
  finished_at: number;
  detail: string | null;
}

export type DeliveryRecord = Omit<DeliveryRow, "id" | "path" | "detail"> & {
  path?: string | null;
  detail?: string | null;
};

export interface DeliveryFilter {
  msgId?: string;
  target?: string;
  /** Default 100. */
  limit?: number;
}

const DELIVERY_COLUMNS = "id, msg_id, target, status, attempts, path, finished_at, detail";

function deliveryFromRow(r: Row): DeliveryRow {
  return {
    id: num(r.id),
    msg_id: str(r.msg_id),
    target: str(r.target),
    status: str(r.status) as DeliveryStatus,
    attempts: num(r.attempts),
    path: strOrNull(r.path),
    finished_at: num(r.finished_at),
    detail: strOrNull(r.detail),
  };
}

export class DeliveryStore {
  readonly #db: Db;

  constructor(db: Db) {
    this.#db = db;
  }

  /** Append an outcome (e.g. a direct send without daemon); returns its id. */
  async record(d: DeliveryRecord): Promise<number> {
    const rs = await this.#db.execute(
      `INSERT INTO deliveries (msg_id, target, status, attempts, path, finished_at, detail) VALUES (?, ?, ?, ?, ?, ?, ?)`,
      [d.msg_id, d.target, d.status, Math.trunc(d.attempts), d.path ?? null, secs(d.finished_at), d.detail ?? null],
    );
    return num(rs.lastInsertRowid);
  }

  /** Most recent first. */
  async list(filter: DeliveryFilter = {}): Promise<DeliveryRow[]> {
    const where: string[] = [];
    const args: InValue[] = [];
    if (filter.msgId !== undefined) {
      where.push("msg_id = ?");
      args.push(filter.msgId);
    }
    if (filter.target !== undefined) {
      where.push("target = ?");
      args.push(filter.target);
    }
    args.push(Math.max(0, Math.trunc(filter.limit ?? 100)));
    const rows = await this.#db.rows(
      `SELECT ${DELIVERY_COLUMNS} FROM deliveries ${where.length ? "WHERE " + where.join(" AND ") : ""}
       ORDER BY finished_at DESC, id DESC LIMIT ?`,
      args,
    );
    return rows.map(deliveryFromRow);
  }
}
