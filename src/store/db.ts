/**
 * Opening `state/peers.db` (docs/architecture.md#peer-store): connection, pragmas, schema checks, forward migrations.
 *
 * - `@libsql/client` is imported lazily (≈140 ms) so commands that never touch the database stay fast.
 * - One connection (`concurrency: 1`): per-connection pragmas (busy_timeout, foreign_keys) hold for
 *   every statement, and statements run synchronously in the native layer anyway.
 * - WAL journal, `synchronous=FULL` (a received message is acknowledged only once stored, so a
 *   commit must survive power loss, not just a SIGKILL), busy_timeout 5 s, foreign keys on.
 * - A database with a newer `user_version` than this build is refused before anything is written;
 *   a file that is not an SQLite database is refused and left untouched.
 * - Every failure surfaces as a one-line `AtlasError("ERR_STORE")`.
 */
import { mkdir, open as openFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { Client, InArgs, InStatement, ResultSet, Row } from "@libsql/client";
import { BUSY_TIMEOUT_MS } from "../config/durations.ts";
import { AtlasError } from "../errors.ts";
import { beforeBlocking } from "../util/blocking.ts";
import { type Migration, MIGRATIONS } from "./migrations.ts";

/** SQLite result codes that mean "this file is not (or no longer) a usable database". */
const INVALID_DB_CODES = new Set(["SQLITE_NOTADB", "SQLITE_CORRUPT", "SQLITE_FORMAT"]);

interface SqliteLikeError {
  code: string;
  message: string;
}

function isSqliteError(e: unknown): e is SqliteLikeError {
  if (!(e instanceof Error)) return false;
  const code: unknown = (e as Error & { code?: unknown }).code;
  return typeof code === "string" &&
    (code.startsWith("SQLITE_") || e.name === "LibsqlError" || e.name === "LibsqlBatchError");
}

/** One line, without the `SQLITE_XXX: ` prefix libsql puts on its messages. */
function reasonOf(e: unknown): string {
  const raw = e instanceof Error ? e.message : String(e);
  return raw.replace(/^SQLITE_[A-Z_]+: /, "").replace(/\s+/g, " ").trim() || "unknown error";
}

function invalidDb(path: string, reason: string, cause?: unknown): AtlasError {
  return new AtlasError("ERR_STORE", `database ${path} is not a valid Atlas database: ${reason}`, { cause });
}

function newerDb(path: string, version: number, target: number): AtlasError {
  return new AtlasError(
    "ERR_STORE",
    `database ${path} has schema version ${version}, newer than this atlas (${target}): upgrade atlas`,
  );
}

/** Map any error thrown by the client to a one-line ERR_STORE. */
export function storeError(path: string, e: unknown, what?: string): AtlasError {
  if (e instanceof AtlasError) return e;
  if (isSqliteError(e) && INVALID_DB_CODES.has(e.code)) return invalidDb(path, reasonOf(e), e);
  const prefix = what ? `database ${path}: ${what}: ` : `database ${path}: `;
  return new AtlasError("ERR_STORE", prefix + reasonOf(e), { cause: e });
}

/** Row value → number (the client may hand back bigint). */
export function num(v: unknown): number {
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v);
  if (typeof v === "string" && v.trim() !== "" && Number.isFinite(Number(v))) return Number(v);
  return 0;
}

export function numOrNull(v: unknown): number | null {
  return v === null || v === undefined ? null : num(v);
}

export function strOrNull(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  return typeof v === "string" ? v : String(v);
}

export function str(v: unknown): string {
  return strOrNull(v) ?? "";
}

export function bytesOrNull(v: unknown): Uint8Array | null {
  if (v instanceof ArrayBuffer) return new Uint8Array(v.slice(0));
  if (v instanceof Uint8Array) return new Uint8Array(v);
  return null;
}

/** JSON text column holding an array of strings; anything malformed reads as []. */
export function jsonStrings(v: unknown): string[] {
  if (typeof v !== "string" || v === "") return [];
  try {
    const parsed: unknown = JSON.parse(v);
    return Array.isArray(parsed) ? parsed.filter((x): x is string => typeof x === "string") : [];
  } catch {
    return [];
  }
}

/** Whole Unix seconds for a timestamp argument. */
export function secs(t: number): number {
  return Math.floor(t);
}

export function nowSecs(): number {
  return Math.floor(Date.now() / 1000);
}

/** A thin wrapper over the client: errors become ERR_STORE, close is idempotent. */
export class Db {
  readonly path: string;
  #client: Client;
  #closed = false;
  #closing: Promise<void> | undefined;
  #released = false;

  constructor(client: Client, path: string) {
    this.#client = client;
    this.path = path;
  }

  get closed(): boolean {
    return this.#closed;
  }

  async execute(sql: string, args: InArgs = []): Promise<ResultSet> {
    if (this.#closed) throw new AtlasError("ERR_STORE", `database ${this.path} is closed`);
    beforeBlocking();
    try {
      return await this.#client.execute({ sql, args });
    } catch (e) {
      throw storeError(this.path, e);
    }
  }

  async rows(sql: string, args: InArgs = []): Promise<Row[]> {
    return (await this.execute(sql, args)).rows;
  }

  /**
   * Several statements in one write transaction (BEGIN IMMEDIATE … COMMIT). `draining`: a
   * write-behind batch queued before `close()` (batch-writer.ts), still let through while close
   * waits for it.
   */
  async batch(stmts: InStatement[], opts: { draining?: boolean } = {}): Promise<ResultSet[]> {
    if (this.#closed && !(opts.draining && !this.#released)) {
      throw new AtlasError("ERR_STORE", `database ${this.path} is closed`);
    }
    beforeBlocking();
    try {
      return await this.#client.batch(stmts, "write");
    } catch (e) {
      throw storeError(this.path, e);
    }
  }

  /** Schema and connection facts (diagnostics, tests). */
  async info(): Promise<{ user_version: number; journal_mode: string; foreign_keys: boolean; tables: string[] }> {
    const [r] = await this.rows(
      `SELECT (SELECT user_version FROM pragma_user_version) AS v,
              (SELECT journal_mode FROM pragma_journal_mode) AS j,
              (SELECT foreign_keys FROM pragma_foreign_keys) AS f,
              (SELECT json_group_array(name) FROM (SELECT name FROM sqlite_schema
                 WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name)) AS t`,
    );
    return {
      user_version: num(r?.v),
      journal_mode: str(r?.j),
      foreign_keys: num(r?.f) === 1,
      tables: jsonStrings(r?.t),
    };
  }

  /**
   * Refuse further calls at once, then checkpoint the WAL into the database file (PASSIVE: never
   * waits for other processes) and release the connection. Idempotent; the promise never rejects.
   * libsql finalises the native connection only once its statements are garbage-collected, so the
   * checkpoint is what makes the database file complete at close rather than at some later GC.
   */
  close(opts: { checkpoint?: boolean; after?: Promise<void> } = {}): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#closed = true;
    const client = this.#client;
    // `after`: writes still finishing on another connection (batch-writer.ts), checkpointed too.
    const before = opts.after?.catch(() => {}) ?? Promise.resolve();
    const checkpoint = opts.checkpoint === false
      ? before
      : before.then(() => client.execute("PRAGMA wal_checkpoint(PASSIVE)")).then(() => undefined, () => undefined);
    this.#closing = checkpoint.then(() => {
      this.#released = true;
      try {
        client.close();
      } catch {
        // nothing useful to do while tearing down
      }
    });
    return this.#closing;
  }
}

export interface OpenOptions {
  /** Migrations to apply (default: all of MIGRATIONS). Tests pass a prefix to build old schemas. */
  migrations?: readonly Migration[];
}

/**
 * Open (creating if needed) the database at `path` and bring its schema up to date.
 * The parent directory is created 0700 and a new file 0600.
 */
export async function openDatabase(path: string, opts: OpenOptions = {}): Promise<Db> {
  const migrations = opts.migrations ?? MIGRATIONS;
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`migration list out of order at ${m.name}`);
  });
  const target = migrations.length;
  const abs = resolve(path);

  try {
    await mkdir(dirname(abs), { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new AtlasError("ERR_STORE", `database ${path}: cannot create directory ${dirname(abs)}: ${reasonOf(e)}`, {
      cause: e,
    });
  }
  // Create the file ourselves so that it gets 0600 (SQLite would use 0644 & ~umask); SQLite gives
  // its -wal and -shm files the mode of the database file. An empty file is an empty database.
  try {
    const fh = await openFile(abs, "wx", 0o600);
    await fh.close();
  } catch (e) {
    if ((e as { code?: string }).code !== "EEXIST") {
      throw new AtlasError("ERR_STORE", `database ${path} cannot be created: ${reasonOf(e)}`, { cause: e });
    }
  }

  await checkHeader(abs, path, target);

  let client: Client;
  try {
    const { createClient } = await import("@libsql/client");
    client = createClient({ url: pathToFileURL(abs).href, concurrency: 1, intMode: "number" });
  } catch (e) {
    if (isSqliteError(e) && INVALID_DB_CODES.has(e.code)) throw invalidDb(path, reasonOf(e), e);
    throw new AtlasError("ERR_STORE", `database ${path} cannot be opened: ${reasonOf(e)}`, { cause: e });
  }
  const db = new Db(client, path);
  try {
    await prepare(db, client, path, migrations, target);
    return db;
  } catch (e) {
    await db.close({ checkpoint: false }); // write nothing to a database we refuse
    throw storeError(path, e);
  }
}

const SQLITE_MAGIC = "SQLite format 3\0";
const HEADER_SIZE = 100;

/**
 * Look at the 100-byte file header before SQLite touches the file, so that a foreign file or a
 * newer schema is refused without ever being opened for writing. SQLite stays the authority (a
 * newer header can also live in the WAL): prepare() checks again through SQL.
 */
async function checkHeader(abs: string, path: string, target: number): Promise<void> {
  let header: Uint8Array;
  let size: number;
  try {
    const fh = await openFile(abs, "r");
    try {
      size = (await fh.stat()).size;
      const buf = new Uint8Array(HEADER_SIZE);
      const { bytesRead } = await fh.read(buf, 0, HEADER_SIZE, 0);
      header = buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  } catch (e) {
    throw new AtlasError("ERR_STORE", `database ${path} cannot be read: ${reasonOf(e)}`, { cause: e });
  }
  if (size === 0) return; // a new, empty database
  const magic = String.fromCharCode(...header.subarray(0, 16));
  if (magic !== SQLITE_MAGIC) throw invalidDb(path, "file is not a database");
  if (header.length < HEADER_SIZE) throw invalidDb(path, `file is truncated (${size} bytes)`);
  const userVersion = new DataView(header.buffer, header.byteOffset, header.byteLength).getInt32(60, false);
  if (userVersion > target) {
    throw newerDb(path, userVersion, target);
  }
}

async function prepare(
  db: Db,
  client: Client,
  path: string,
  migrations: readonly Migration[],
  target: number,
): Promise<void> {
  // Connection-level settings only: nothing here writes to the file.
  await db.execute(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);

  // Read-only inspection first: a newer or foreign database must not be touched.
  const [head] = await db.rows(
    `SELECT (SELECT user_version FROM pragma_user_version) AS v,
            (SELECT json_group_array(name) FROM sqlite_schema WHERE type = 'table') AS tables`,
  );
  const version = num(head?.v);
  const tables = jsonStrings(head?.tables);
  checkVersion(path, version, target, tables, migrations);

  // Persistent journal mode (a no-op when already WAL) and per-connection settings.
  await client.executeMultiple(
    "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
  ).catch((e) => {
    throw storeError(path, e);
  });

  if (version >= target) return;
  const tx = await client.transaction("write").catch((e) => {
    throw storeError(path, e);
  });
  try {
    // Another process may have migrated between our read and our write lock: look again.
    const rs = await tx.execute("PRAGMA user_version");
    const current = num(rs.rows[0]?.[0]);
    if (current > target) checkVersion(path, current, target, [], migrations);
    for (const m of migrations.slice(current, target)) {
      try {
        await tx.batch([...m.statements, `PRAGMA user_version = ${m.version}`]);
      } catch (e) {
        throw storeError(path, e, `migration ${m.version} (${m.name}) failed`);
      }
    }
    await tx.commit();
  } catch (e) {
    throw storeError(path, e);
  } finally {
    tx.close(); // rolls back if still open; no-op after commit
  }
}

function checkVersion(
  path: string,
  version: number,
  target: number,
  tables: string[],
  migrations: readonly Migration[],
): void {
  if (version > target) {
    throw newerDb(path, version, target);
  }
  if (version < 0) throw invalidDb(path, `negative schema version ${version}`);
  const own = tables.filter((t) => !t.startsWith("sqlite_"));
  if (version === 0) {
    if (own.length > 0) invalidDbThrow(path, `unversioned database already holds tables (${own.join(", ")})`);
    return;
  }
  const missing = migrations.slice(0, version).flatMap((m) => m.tables).filter((t) => !own.includes(t));
  if (missing.length > 0) invalidDbThrow(path, `schema version ${version} but missing tables (${missing.join(", ")})`);
}

function invalidDbThrow(path: string, reason: string): never {
  throw invalidDb(path, reason);
}
