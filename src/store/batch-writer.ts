/**
 * Group commit (docs/architecture.md#peer-store): writes queued during one event-loop turn are
 * committed as one transaction at the next `setImmediate` (or, with `lingerMs`, those queued
 * within that time), so a burst costs one commit (one fsync under `synchronous = FULL`) instead
 * of one each. Each caller's promise settles once its statements are committed, so "stored
 * before acknowledged" holds as before.
 *
 * Three writers per store, over two connections besides the main one (index.ts opens and closes
 * them), both running their statements prepared once (side-db.ts):
 * - **session bookkeeping** (peer merge + session row at open/close) on a **second connection
 *   with `synchronous = NORMAL`**: `synchronous` is per connection, so these commits skip the WAL
 *   fsync (the 1.3–1.6 ms that blocked the loop after each handshake) while the main connection
 *   stays FULL. A crash loses nothing committed; a power cut may lose the last session rows.
 *   They linger SESSION_ROWS_LINGER_MS (25 ms) first, so a burst of handshakes is not
 *   interleaved with synchronous statements: a crash (not a clean close) may lose the last 25 ms.
 * - **outbox final outcomes** on that same no-fsync connection, where the worker's claims run
 *   directly, not batched (outbox.ts says why losing either to a power cut only means the
 *   message is sent again, and de-duplicated).
 * - **messages** (inbox inserts, outbox retry schedules) on a connection of their own with
 *   `synchronous = FULL`, like the main one: durable, one fsync per batch.
 *
 * A writer's batches run one after another; two writers on one connection never interleave inside
 * a transaction (side-db.ts runs each batch synchronously). A batch that fails is retried item
 * by item, so one bad item fails alone. `close()` commits everything queued before it returns.
 */
import type { InStatement, ResultSet } from "@libsql/client";
import { AtlasError } from "../errors.ts";
/** What a writer commits through: the main connection (db.ts) or the bookkeeping one (side-db.ts). */
export interface BatchTarget {
  batch(stmts: InStatement[], opts?: { draining?: boolean }): Promise<ResultSet[]>;
}

interface Item {
  stmts: InStatement[];
  resolve: (rs: ResultSet[]) => void;
  reject: (e: unknown) => void;
  order?: WriteOrder;
}

/**
 * Where a write belongs among the batch's writes of the same `group`: those are committed in
 * ascending `n`, whatever order they were queued in (inbox inserts: the stream order of one
 * session, which a few microtask hops of frame reading can otherwise swap).
 */
export interface WriteOrder {
  group: object;
  n: number;
}

export class BatchWriter {
  readonly #connect: () => Promise<BatchTarget>;
  #db: Promise<BatchTarget> | null = null;
  #queue: Item[] = [];
  #scheduled = false;
  #chain: Promise<void> = Promise.resolve();
  #closed = false;
  readonly #lingerMs: number;
  /** Batches committed (tests, diagnostics). */
  batches = 0;

  /**
   * `connect`: the connection, opened lazily at the first batch (its owner closes it).
   * `lingerMs`: gather writes this long before committing them (0: at the next `setImmediate`).
   */
  constructor(connect: () => Promise<BatchTarget>, opts: { lingerMs?: number } = {}) {
    this.#connect = connect;
    this.#lingerMs = opts.lingerMs ?? 0;
  }

  /** Queue statements for the next batch; resolves with their results once committed. */
  write(stmts: InStatement[], order?: WriteOrder): Promise<ResultSet[]> {
    if (this.#closed) return Promise.reject(new AtlasError("ERR_STORE", "database is closed"));
    return new Promise((resolve, reject) => {
      this.#queue.push({ stmts, resolve, reject, order });
      this.#schedule();
    });
  }

  /**
   * Queue a statement that needs to run once per batch however often it is asked for (a
   * clean-up after the batch's inserts): it runs after the batch's other statements, once per
   * `key`, and every caller gets its result.
   */
  writeOnce(key: string, stmt: InStatement): Promise<ResultSet> {
    if (this.#closed) return Promise.reject(new AtlasError("ERR_STORE", "database is closed"));
    let t = this.#tails.get(key);
    if (!t) {
      const waiters: Item[] = [];
      const done = new Promise<ResultSet>((resolve, reject) => {
        waiters.push({ stmts: [stmt], resolve: (rs) => resolve(rs[0]!), reject });
      });
      t = { item: waiters[0]!, done };
      this.#tails.set(key, t);
      this.#schedule();
    }
    return t.done;
  }

  #tails = new Map<string, { item: Item; done: Promise<ResultSet> }>();

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    const run = () => {
      this.#scheduled = false;
      this.#chain = this.#chain.then(() => this.#flush());
    };
    if (this.#lingerMs <= 0) setImmediate(run);
    else this.#linger = setTimeout(run, this.#lingerMs);
  }

  #linger: ReturnType<typeof setTimeout> | null = null;

  async #flush(): Promise<void> {
    const items = sortGroups(this.#queue.splice(0));
    for (const t of this.#tails.values()) items.push(t.item);
    this.#tails.clear();
    if (items.length === 0) return;
    let db: BatchTarget;
    try {
      db = await (this.#db ??= this.#connect());
    } catch (e) {
      this.#db = null;
      for (const it of items) it.reject(e);
      return;
    }
    this.batches++;
    try {
      const rs = await db.batch(items.flatMap((it) => it.stmts), { draining: true });
      let at = 0;
      for (const it of items) {
        it.resolve(rs.slice(at, at + it.stmts.length));
        at += it.stmts.length;
      }
    } catch (e) {
      if (items.length === 1) return items[0]!.reject(e);
      for (const it of items) {
        try {
          it.resolve(await db.batch(it.stmts, { draining: true }));
        } catch (e2) {
          it.reject(e2);
        }
      }
    }
  }

  /** Commit what is queued. Idempotent; never rejects. */
  async close(): Promise<void> {
    if (this.#closed) return await this.#chain;
    this.#closed = true;
    if (this.#linger) clearTimeout(this.#linger); // committed now, below
    this.#chain = this.#chain.then(() => this.#flush());
    await this.#chain;
    this.#db = null;
  }
}

/** Within each order group, put its items in ascending `n`, in the slots the group occupies. */
function sortGroups(items: Item[]): Item[] {
  const groups = new Map<object, number[]>();
  items.forEach((it, i) => {
    if (!it.order) return;
    const slots = groups.get(it.order.group);
    if (slots) slots.push(i);
    else groups.set(it.order.group, [i]);
  });
  for (const slots of groups.values()) {
    if (slots.length < 2) continue;
    const sorted = slots.map((i) => items[i]!).sort((a, b) => a.order!.n - b.order!.n);
    slots.forEach((slot, k) => (items[slot] = sorted[k]!));
  }
  return items;
}
