/**
 * The write-behind connections of batch-writer.ts: extra connections to the node's database,
 * driven through `libsql` (the driver under `@libsql/client`) directly so that each statement is
 * prepared once and reused — `@libsql/client`'s file driver prepares every statement on every
 * call, which was the largest store item left on the connect path (bench/RESULTS.md, lever 2)
 * and half of an inbox batch's commit (item 11). The bookkeeping connection runs with
 * `synchronous = NORMAL`, the messages connection with FULL. Only what is needed: `batch` for
 * the BatchWriters on it, `read` for the outbox worker's polls, `close` for the store.
 */
import type { InStatement, InValue, ResultSet, Row } from "@libsql/client";
import { resolve } from "node:path";
import { BUSY_TIMEOUT_MS } from "../config/durations.ts";
import { AtlasError } from "../errors.ts";
import { storeError } from "./db.ts";
import { beforeBlocking } from "../util/blocking.ts";

type Database = import("libsql").Database;
type Statement = import("libsql").Statement;

/** Prepared statements kept per connection (the session and outbox bookkeeping use a handful). */
const STATEMENT_CACHE = 64;

export class SideDb {
  readonly path: string;
  #db: Database;
  #stmts = new Map<string, Statement>();
  #closed = false;

  private constructor(db: Database, path: string) {
    this.#db = db;
    this.path = path;
  }

  /**
   * Open a database `openDatabase` has already prepared (checked, migrated). `synchronous`:
   * NORMAL (no fsync per commit; a power cut may lose the last commits) or FULL (durable).
   */
  static async open(path: string, opts: { synchronous?: "NORMAL" | "FULL" } = {}): Promise<SideDb> {
    try {
      const { default: Database } = await import("libsql");
      const db = new Database(resolve(path));
      const sync = opts.synchronous ?? "NORMAL";
      db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}; PRAGMA synchronous = ${sync}; PRAGMA foreign_keys = ON;`);
      return new SideDb(db, path);
    } catch (e) {
      throw storeError(path, e);
    }
  }

  /** One value of a pragma, for tests. */
  pragma(name: string): unknown {
    const row = this.#db.prepare(`PRAGMA ${name}`).get() as Record<string, unknown> | undefined;
    return row ? Object.values(row)[0] : undefined;
  }

  /** The statements in one write transaction (BEGIN IMMEDIATE … COMMIT); rolled back on error. */
  batch(stmts: InStatement[], _opts: { draining?: boolean } = {}): Promise<ResultSet[]> {
    if (this.#closed) return Promise.reject(new AtlasError("ERR_STORE", `database ${this.path} is closed`));
    beforeBlocking();
    try {
      const db = this.#db;
      this.#statement("BEGIN IMMEDIATE").run();
      try {
        const out = stmts.map((st) => this.#run(st));
        this.#statement("COMMIT").run();
        return Promise.resolve(out);
      } catch (e) {
        if (db.inTransaction) db.exec("ROLLBACK");
        throw e;
      }
    } catch (e) {
      return Promise.reject(storeError(this.path, e));
    }
  }

  /** One SELECT outside any transaction, through its prepared statement. */
  read(sql: string, args: InValue[]): Row[] {
    if (this.#closed) throw new AtlasError("ERR_STORE", `database ${this.path} is closed`);
    beforeBlocking();
    try {
      return this.#statement(sql).all(args) as Row[];
    } catch (e) {
      throw storeError(this.path, e);
    }
  }

  #run(st: InStatement): ResultSet {
    const sql = typeof st === "string" ? st : st.sql;
    const args = typeof st === "string" ? [] : (st.args ?? []) as InValue[];
    const p = this.#statement(sql);
    const bind = args.map((v) => (typeof v === "boolean" ? (v ? 1 : 0) : v));
    if (p.reader) {
      const rows = p.all(bind) as Row[];
      return resultSet(rows, 0, undefined);
    }
    const info = p.run(bind);
    return resultSet([], info.changes, info.lastInsertRowid);
  }

  #statement(sql: string): Statement {
    let p = this.#stmts.get(sql);
    if (!p) {
      p = this.#db.prepare(sql);
      if (this.#stmts.size >= STATEMENT_CACHE) this.#stmts.delete(this.#stmts.keys().next().value!);
      this.#stmts.set(sql, p);
    }
    return p;
  }

  close(_opts: { checkpoint?: boolean } = {}): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    this.#stmts.clear();
    try {
      this.#db.close();
    } catch {
      // nothing useful to do while tearing down
    }
    return Promise.resolve();
  }
}

function resultSet(rows: Row[], changes: number, rowid: number | bigint | undefined): ResultSet {
  return {
    columns: [],
    columnTypes: [],
    rows,
    rowsAffected: changes,
    lastInsertRowid: rowid === undefined ? undefined : BigInt(rowid),
    toJSON: () => ({ rows, rowsAffected: changes }),
  };
}
