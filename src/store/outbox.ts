/**
 * The `outbox` table (docs/architecture.md#peer-store, README.md#commands): messages queued for delivery.
 *
 * Life cycle: enqueue → due() picks queued rows whose next_attempt_at has come →
 * markDelivering() while an attempt is in flight → markAttempt() on a retryable failure, or
 * complete() on the final outcome, which removes the row and writes its `deliveries` entry in one
 * transaction (nothing lost, nothing logged twice). A crash mid-attempt leaves rows in
 * 'delivering': requeueDelivering() puts them back at start-up.
 */
import type { InValue, Row } from "@libsql/client";
import { AtlasError } from "../errors.ts";
import type { BatchWriter } from "./batch-writer.ts";
import type { SideDb } from "./side-db.ts";
import { type Db, num, secs, str, strOrNull } from "./db.ts";
import type { DeliveryOutcome } from "./deliveries.ts";

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

/** A due row without its body (OutboxStore.dueHeads). */
export type OutboxHead = Pick<OutboxRow, "id" | "target" | "topic" | "created_at" | "expires_at" | "attempts">;

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

const OUTBOX_COLUMNS = "id, target, topic, reply_to, body, created_at, next_attempt_at, attempts, expires_at, status";
const HEAD_COLUMNS = "id, target, topic, created_at, expires_at, attempts";

/**
 * Queued rows due by `?` (Unix s), in queue order, at most `?`. The order is the `outbox_due`
 * index's (migration 4), so a poll reads its rows off the index instead of sorting the backlog.
 */
export function dueSql(columns: string): string {
  return `SELECT ${columns} FROM outbox WHERE status = 'queued' AND next_attempt_at <= ?
       ORDER BY next_attempt_at, created_at, id LIMIT ?`;
}

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
  readonly #writer: BatchWriter;
  readonly #bookkeeping: BatchWriter;
  readonly #side: () => Promise<SideDb>;

  /**
   * `writer`: group commit on the durable (FULL) messages connection, for retry schedules;
   * `bookkeeping`: group commit on the no-fsync connection (batch-writer.ts), for final outcomes;
   * `side`: that connection itself, for the worker's polls (dueHeads, claim), run through its
   * prepared statements at once instead of a turn later. Neither claims nor outcomes need to be
   * durable: either lost to a power cut leaves the row queued (or `delivering`, re-queued at
   * start), so the message is sent again and the receiver de-duplicates it. A process crash loses
   * neither (WAL, synchronous = NORMAL).
   */
  constructor(db: Db, writer: BatchWriter, bookkeeping: BatchWriter, side: () => Promise<SideDb>) {
    this.#db = db;
    this.#writer = writer;
    this.#bookkeeping = bookkeeping;
    this.#side = side;
  }

  /** The bookkeeping connection, never opened once the store is closing. */
  #sideDb(): Promise<SideDb> {
    if (this.#db.closed) return Promise.reject(new AtlasError("ERR_STORE", `database ${this.#db.path} is closed`));
    return this.#side();
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

  /** created_at (Unix s) of the oldest message still in the outbox, or null when it is empty. */
  async oldestCreatedAt(): Promise<number | null> {
    const rows = await this.#db.rows("SELECT min(created_at) AS t FROM outbox");
    const t = rows[0]?.t;
    return t === null || t === undefined ? null : num(t);
  }

  /** Queued messages whose next attempt is due (expired ones included: the worker decides), soonest first. */
  async due(now: number, limit = 100): Promise<OutboxRow[]> {
    const rows = await this.#db.rows(dueSql(OUTBOX_COLUMNS), [secs(now), Math.max(0, Math.trunc(limit))]);
    return rows.map(outboxFromRow);
  }

  /**
   * Like due(), without the bodies: what the worker needs to choose what to send; claim() then
   * returns the full rows of those it took.
   */
  async dueHeads(now: number, limit = 100): Promise<OutboxHead[]> {
    const rows = (await this.#sideDb()).read(dueSql(HEAD_COLUMNS), [secs(now), Math.max(0, Math.trunc(limit))]);
    return rows.map((r) => ({
      id: str(r.id),
      target: str(r.target),
      topic: strOrNull(r.topic),
      created_at: num(r.created_at),
      expires_at: num(r.expires_at),
      attempts: num(r.attempts),
    }));
  }

  /** Claim a queued message for an attempt. False when it is gone or already claimed. */
  async markDelivering(id: string): Promise<boolean> {
    const rs = await this.#db.execute("UPDATE outbox SET status = 'delivering' WHERE id = ? AND status = 'queued'", [
      id,
    ]);
    return rs.rowsAffected > 0;
  }

  /**
   * Claim several queued messages in one transaction, at once (not group-committed: a freed
   * window slot waits for it); returns the IDs claimed (the others were gone or taken). Written
   * without fsync: a claim lost to a power cut leaves the row `queued`, and one that survives a
   * crash is re-queued at start — either way the message is sent again and the receiver
   * de-duplicates it.
   */
  async claim(ids: string[]): Promise<Map<string, OutboxRow>> {
    if (ids.length === 0) return new Map();
    const [rs] = await (await this.#sideDb()).batch([{
      sql: `UPDATE outbox SET status = 'delivering' WHERE status = 'queued' AND id IN (${
        ids.map(() => "?").join(", ")
      }) RETURNING ${OUTBOX_COLUMNS}`,
      args: ids,
    }]);
    return new Map((rs?.rows ?? []).map((r) => [str(r.id), outboxFromRow(r)]));
  }

  /** A retryable attempt failed: count it and schedule the next one (group-committed). */
  async markAttempt(id: string, nextAttemptAt: number): Promise<void> {
    await this.#writer.write([{
      sql: "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, status = 'queued' WHERE id = ?",
      args: [secs(nextAttemptAt), id],
    }]);
  }

  /**
   * Final outcome: remove the message and append its `deliveries` entry atomically (group
   * commit: outcomes finished in the same event-loop turn share one transaction), without fsync
   * (see the constructor): the sender's fsync per batch of outcomes held its loop ~1.5 ms while
   * acknowledged window slots waited to be refilled (drain 1,780–1,860 → 2,110–2,470/s).
   * Returns false (and records nothing) when the message is not in the outbox.
   */
  async complete(id: string, o: DeliveryOutcome): Promise<boolean> {
    const attempts = o.attempts !== undefined ? "?" : o.status === "expired" ? "attempts" : "attempts + 1";
    const args: InValue[] = [o.status];
    if (o.attempts !== undefined) args.push(Math.trunc(o.attempts));
    args.push(o.path ?? null, secs(o.finished_at), o.detail ?? null, id);
    const [ins] = await this.#bookkeeping.write([
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
