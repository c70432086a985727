/**
 * Write-behind for session bookkeeping (docs/architecture.md#peer-store): the peer merge and the
 * session row written when a session opens or closes. They are off the handshake path in two ways:
 *
 * - **One batch per event-loop turn**: calls queue their statements; a `setImmediate` commits
 *   everything queued so far as one transaction, so a burst of sessions costs one commit.
 * - **A second connection with `synchronous = NORMAL`**: SQLite's `synchronous` is per
 *   connection, so these commits skip the WAL fsync (the 1.3–1.6 ms that blocked the loop) while
 *   the main connection — inbox, outbox, deliveries — stays FULL. A crash of the process loses
 *   nothing committed; a power cut may lose the last session rows, never an acknowledged message.
 *
 * Batches run one after another (one writer). A batch that fails is retried item by item, so one
 * bad item fails alone. `close()` commits everything queued before it returns.
 */
import type { InStatement, ResultSet } from "@libsql/client";
import { AtlasError } from "../errors.ts";
import type { Db } from "./db.ts";

interface Item {
  stmts: InStatement[];
  resolve: (rs: ResultSet[]) => void;
  reject: (e: unknown) => void;
}

export class SessionWriter {
  readonly #connect: () => Promise<Db>;
  #db: Promise<Db> | null = null;
  #queue: Item[] = [];
  #scheduled = false;
  #chain: Promise<void> = Promise.resolve();
  #closed = false;
  /** Batches committed (tests, diagnostics). */
  batches = 0;

  constructor(connect: () => Promise<Db>) {
    this.#connect = connect;
  }

  /** Queue statements for the next batch; resolves with their results once committed. */
  write(stmts: InStatement[]): Promise<ResultSet[]> {
    if (this.#closed) return Promise.reject(new AtlasError("ERR_STORE", "database is closed"));
    return new Promise((resolve, reject) => {
      this.#queue.push({ stmts, resolve, reject });
      if (this.#scheduled) return;
      this.#scheduled = true;
      setImmediate(() => {
        this.#scheduled = false;
        this.#chain = this.#chain.then(() => this.#flush());
      });
    });
  }

  async #flush(): Promise<void> {
    const items = this.#queue.splice(0);
    if (items.length === 0) return;
    let db: Db;
    try {
      db = await (this.#db ??= this.#connect());
    } catch (e) {
      this.#db = null;
      for (const it of items) it.reject(e);
      return;
    }
    this.batches++;
    try {
      const rs = await db.batch(items.flatMap((it) => it.stmts));
      let at = 0;
      for (const it of items) {
        it.resolve(rs.slice(at, at + it.stmts.length));
        at += it.stmts.length;
      }
    } catch (e) {
      if (items.length === 1) return items[0]!.reject(e);
      for (const it of items) {
        try {
          it.resolve(await db.batch(it.stmts));
        } catch (e2) {
          it.reject(e2);
        }
      }
    }
  }

  /** Commit what is queued, then release the connection. Idempotent; never rejects. */
  async close(): Promise<void> {
    if (this.#closed) return await this.#chain;
    this.#closed = true;
    this.#chain = this.#chain.then(() => this.#flush());
    await this.#chain;
    const db = this.#db;
    this.#db = null;
    if (db) await db.then((d) => d.close({ checkpoint: false }), () => {});
  }
}
