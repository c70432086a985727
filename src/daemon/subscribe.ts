/**
 * `subscribe` (docs/protocol.md#control-socket-cli--daemon): push stored messages and session events to local
 * clients, resumable by inbox seq, without letting a slow client grow the daemon's memory.
 *
 * The inbox is the queue: a subscriber holds only a cursor (the last seq it was sent) and reads
 * rows after it, a page at a time, for as long as its socket takes them. When the socket's unread
 * output reaches the high water mark it waits for it to drain; messages that arrive meanwhile
 * only mark it "behind", and are read from the store once it catches up — nothing is copied per
 * subscriber, so a stalled one costs one page and the socket buffer. Session events exist only in
 * memory: each subscriber queues at most PUSH_MAX_EVENTS of them and counts the rest, which it
 * reports with a `lagged` line (events are a live view; `status` gives the current state).
 */
import { CONTROL_LIMITS } from "../config/defaults.ts";
import { AtlasError } from "../errors.ts";
import type { InboxRow, Store } from "../store/index.ts";
import type { ControlHandler, PushSink } from "../util/service.ts";
import { messageJson } from "./message-json.ts";
import { CONTROL_VERSION } from "./protocol.ts";
import type { SessionEventView } from "./shapes.ts";

/** What one subscriber asked for. */
export interface SubscribeArgs {
  /** Push messages stored after this seq; default: the newest now (only new ones). */
  after: number | null;
  from: string | null;
  topic: string | null;
  /** Push stored messages (default true). */
  messages: boolean;
  /** Push session events (default false). */
  events: boolean;
  /** Only messages that answer another (reply_to set): what a client waiting for replies needs. */
  replies: boolean;
}

/** The reply line of `subscribe`, before the pushes. */
export interface SubscribeResult {
  /** The newest stored seq when the subscription started. */
  seq: number;
  /** Messages after this seq are pushed. */
  after: number;
}

/** The first bytes of a message push line: the MESSAGE object follows, verbatim, then `}`. */
export const MESSAGE_PUSH_PREFIX = `{"v":${CONTROL_VERSION},"push":"message","message":`;

export function parseSubscribeArgs(a: Record<string, unknown>): SubscribeArgs {
  const after = a.after ?? null;
  if (after !== null && !(Number.isSafeInteger(after) && (after as number) >= 0)) {
    throw new AtlasError("ERR_USAGE", "subscribe: `after` must be a seq (an integer ≥ 0) or null");
  }
  const text = (k: string) => (typeof a[k] === "string" ? a[k] as string : null);
  return {
    after: after as number | null,
    from: text("from"),
    topic: text("topic"),
    messages: a.messages !== false,
    events: a.events === true,
    replies: a.replies === true,
  };
}

/** Every subscriber of one daemon. */
export class Subscriptions {
  readonly #store: Store;
  readonly #subs = new Set<Subscriber>();

  constructor(store: Store) {
    this.#store = store;
  }

  /**
   * A message was stored: a subscriber that is caught up gets `row` at once (no store read on the
   * push path); any other reads on from its cursor.
   */
  messageStored(row?: InboxRow): void {
    for (const s of this.#subs) if (!row || !s.offer(row)) s.kick();
  }

  event(e: SessionEventView): void {
    const line = JSON.stringify({ v: CONTROL_VERSION, push: "event", event: e });
    for (const s of this.#subs) s.event(line);
  }

  get count(): number {
    return this.#subs.size;
  }

  /** The `subscribe` control operation. */
  handler(): ControlHandler {
    return async (args, call) => {
      if (!call) throw new AtlasError("ERR_USAGE", "subscribe needs a control connection of its own");
      const a = parseSubscribeArgs(args);
      const seq = await this.#store.inbox.latestSeq();
      const after = a.after ?? seq;
      const sink = call.stream();
      const sub = new Subscriber(this.#store, sink, a, after);
      this.#subs.add(sub);
      void sink.closed.then(() => this.#subs.delete(sub));
      void sink.ready.then(() => sub.kick());
      return { seq, after } satisfies SubscribeResult;
    };
  }
}

class Subscriber {
  #cursor: number;
  #busy = false;
  #again = false;
  #events: string[] = [];
  #dropped = 0;
  /** The last pump read found nothing more after the cursor, and nothing was stored since unsent. */
  #caughtUp = false;
  readonly #store: Store;
  readonly #sink: PushSink;
  readonly #a: SubscribeArgs;

  constructor(store: Store, sink: PushSink, a: SubscribeArgs, after: number) {
    this.#store = store;
    this.#sink = sink;
    this.#a = a;
    this.#cursor = after;
  }

  /** Something new: run the pump, or tell the running one to look again. */
  kick(): void {
    this.#caughtUp = false;
    if (this.#busy) this.#again = true;
    else void this.#run();
  }

  /**
   * Push `row` directly when it is the very next one: idle, caught up, and `row.rowid` the seq
   * right after the cursor (seqs are consecutive unless an insert failed; messages stored by two
   * requests at once can be announced out of order — then this declines and the store is read).
   */
  offer(row: InboxRow): boolean {
    if (this.#busy || !this.#caughtUp || row.rowid !== this.#cursor + 1 || !this.#a.messages) return false;
    if (this.#sink.isClosed()) return true;
    this.#cursor = row.rowid;
    const wanted = (this.#a.from === null || this.#a.from === row.from_id) &&
      (this.#a.topic === null || this.#a.topic === row.topic) && (!this.#a.replies || row.reply_to !== null);
    // A full socket keeps the line (it is already written) but ends the shortcut until the pump drains it.
    if (wanted && !this.#sink.push(MESSAGE_PUSH_PREFIX + messageJson(row) + "}")) this.#caughtUp = false;
    return true;
  }

  event(line: string): void {
    if (!this.#a.events) return;
    if (this.#events.length >= CONTROL_LIMITS.PUSH_MAX_EVENTS) this.#dropped++;
    else this.#events.push(line);
    this.kick();
  }

  async #run(): Promise<void> {
    this.#busy = true;
    try {
      do {
        this.#again = false;
        if (!(await this.#flushEvents()) || !(await this.#pumpMessages())) return;
      } while (this.#again && !this.#sink.isClosed());
      this.#caughtUp = this.#a.messages;
    } catch {
      // the store is closing with the daemon: the stream ends with it
    } finally {
      this.#busy = false;
    }
  }

  /** Push one line; false when the client went away while we waited for it to read. */
  async #push(line: string): Promise<boolean> {
    return this.#sink.push(line) || await this.#sink.drained();
  }

  async #flushEvents(): Promise<boolean> {
    if (this.#dropped > 0) {
      const n = this.#dropped;
      this.#dropped = 0;
      if (!(await this.#push(JSON.stringify({ v: CONTROL_VERSION, push: "lagged", dropped_events: n })))) return false;
    }
    while (this.#events.length > 0) {
      if (!(await this.#push(this.#events.shift()!))) return false;
    }
    return true;
  }

  async #pumpMessages(): Promise<boolean> {
    if (!this.#a.messages) return true;
    this.#caughtUp = false;
    const page = CONTROL_LIMITS.PUSH_PAGE_ROWS;
    for (;;) {
      if (this.#sink.isClosed()) return false;
      const rows = await this.#store.inbox.list({
        from: this.#a.from ?? undefined,
        topic: this.#a.topic ?? undefined,
        sinceRowid: this.#cursor,
        limit: page,
      });
      for (const r of rows) {
        this.#cursor = r.rowid;
        if (this.#a.replies && r.reply_to === null) continue;
        if (!(await this.#push(MESSAGE_PUSH_PREFIX + messageJson(r) + "}"))) return false;
      }
      if (rows.length < page) return true;
      if (!(await this.#flushEvents())) return false;
    }
  }
}
