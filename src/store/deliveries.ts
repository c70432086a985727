/**
 * The `deliveries` table (docs/architecture.md#peer-store, README.md#commands): the audit log of every delivery outcome, appended when
 * an outbox message is completed (outbox.ts) or when a message was sent directly, without the
 * outbox.
 */
import type { InValue, Row } from "@libsql/client";
import { type Db, num, secs, str, strOrNull } from "./db.ts";

export type DeliveryStatus = "delivered" | "failed" | "expired";

/** The final outcome of an outbox message, as OutboxStore.complete() records it. */
export interface DeliveryOutcome {
  status: DeliveryStatus;
  finished_at: number;
  path?: string | null;
  detail?: string | null;
  /** Default: the row's attempts, plus one unless the status is 'expired' (the final attempt). */
  attempts?: number;
}

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

  /** Append several outcomes in one transaction (one commit instead of one each). */
  async recordMany(ds: DeliveryRecord[]): Promise<void> {
    if (ds.length === 0) return;
    await this.#db.batch(ds.map((d) => ({
      sql:
        `INSERT INTO deliveries (msg_id, target, status, attempts, path, finished_at, detail) VALUES (?, ?, ?, ?, ?, ?, ?)`,
      args: [
        d.msg_id,
        d.target,
        d.status,
        Math.trunc(d.attempts),
        d.path ?? null,
        secs(d.finished_at),
        d.detail ?? null,
      ],
    })));
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
