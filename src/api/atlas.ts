/**
 * The library (README.md#library): an agent program talks to its node through this class, either
 * attached to the home's running daemon over its control socket, or with a node started in this
 * process (the agent daemon, embedded: same services, same control socket, stopped by `close()`).
 * Either way every call goes over the control socket, so both modes behave exactly alike and the
 * CLI, this library and the MCP server share one implementation of each operation.
 */
import { REQUEST_TIMEOUT_MS } from "../config/durations.ts";
import { nodeEnv } from "../config/env.ts";
import type { HomePaths } from "../config/paths.ts";
import { ControlPool } from "../daemon/control-pool.ts";
import { openStream, parsePush } from "../daemon/control-stream.ts";
import type { Listening } from "../daemon/daemon.ts";
import { isDaemonRunning } from "../daemon/detect.ts";
import type { StatusReport } from "../daemon/ops.ts";
import type {
  DeliveryView,
  DiscoverView,
  PeerView,
  PingView,
  SessionEventView,
  SessionView,
} from "../daemon/shapes.ts";
import type { DiscoverReport } from "../bootstrap/discover.ts";
import { AtlasError } from "../errors.ts";
import type { Logger } from "../util/log.ts";
import { type Message, toMessage } from "./message.ts";
import { ReplyWaiter } from "./replies.ts";

export interface AttachOptions {
  /** The node's home (default $ATLAS_HOME, else ~/.atlas). */
  home?: string;
}

export interface StartOptions extends AttachOptions {
  /** Bind address (default: the config's network.host). */
  host?: string;
  /** UDP port (default: the config's network.port; 0 for any). */
  port?: number;
  /** Bootstrap nodes and relays added to the config's lists. */
  bootstrap?: string[];
  relay?: string[];
  /** Where the node logs (default: warnings and errors on stderr). */
  log?: Logger;
}

export interface SendOptions {
  topic?: string;
  /** The msg_id this message answers. */
  replyTo?: string;
  /** `body` is a string of JSON text to send verbatim (e.g. with big integers), not a value. */
  rawJson?: boolean;
  /**
   * Always go through the outbox (`queued: true`). By default a message to a peer with a live
   * session is delivered at once and the result carries its MessageAck (`queued: false`); without
   * one, or when that fails, it is queued in the outbox with retries.
   */
  queue?: boolean;
}

export interface RequestOptions extends Omit<SendOptions, "replyTo"> {
  /** How long to wait for the reply, in ms (default 30 s): ERR_TIMEOUT after. */
  timeout?: number;
}

export interface MessagesOptions {
  /** Messages stored after this seq (a Message's `seq`); default: only those stored from now on. */
  after?: number;
  /** Only from this node ID (in full). */
  from?: string;
  topic?: string;
}

const QUEUED = { queued: true, node_id: null, name: null, trust: null, path: null, relay: null, ack: null } as const;

export type Status = StatusReport & { subscribers?: number };

/** A subscription to received messages (see `Atlas.inbox`). */
export interface Inbox extends AsyncIterable<Message> {
  /** The newest stored seq when it was opened. */
  readonly seq: number;
  /** Messages stored after this seq come out. */
  readonly after: number;
  close(): void;
}

export class Atlas {
  readonly #paths: HomePaths;
  readonly #stop: (() => Promise<void>) | null;
  /** Control calls over kept-open connections. */
  readonly #pool: ControlPool;
  #replies: Promise<ReplyWaiter> | null = null;
  /** Where the node listens, when this process started it. */
  readonly listening: Listening | null;

  private constructor(paths: HomePaths, stop: (() => Promise<void>) | null, listening: Listening | null) {
    this.#paths = paths;
    this.#pool = new ControlPool(paths);
    this.#stop = stop;
    this.listening = listening;
  }

  /** Attach to the daemon running for `home`; ERR_NOT_RUNNING (exit 1) when none does. */
  static async attach(o: AttachOptions = {}): Promise<Atlas> {
    const { paths } = nodeEnv({ home: o.home });
    if (!(await isDaemonRunning(paths))) {
      throw new AtlasError(
        "ERR_NOT_RUNNING",
        `no daemon is running for ${paths.home}: start one with \`atlas daemon\`, or use Atlas.start()`,
      );
    }
    return new Atlas(paths, null, null);
  }

  /** Start this home's node in this process (its daemon, embedded); `close()` stops it. */
  static async start(o: StartOptions = {}): Promise<Atlas> {
    const env = nodeEnv({ home: o.home, log: o.log });
    const { runAgentDaemon } = await import("../daemon/roles.ts");
    let stop!: () => void;
    const until = new Promise<void>((r) => (stop = r));
    let up!: (l: Listening) => void;
    const listening = new Promise<Listening>((r) => (up = r));
    const run = runAgentDaemon(env, {
      host: o.host,
      port: o.port,
      bootstrap: o.bootstrap ?? [],
      relay: o.relay ?? [],
      until,
      onListening: up,
    });
    const ended = run.then(() => {
      throw new AtlasError("ERR_INTERNAL", "the node stopped while starting");
    });
    const l = await Promise.race([listening, ended]);
    return new Atlas(env.paths, async () => (stop(), await run), l);
  }

  #call<T>(op: string, args: Record<string, unknown> = {}): Promise<T> {
    return this.#pool.call<T>(op, args);
  }

  /** The node's status (the `status` shape's daemon fields). */
  status(): Promise<Status> {
    return this.#call<Status>("status");
  }

  /**
   * Queue a message for `peer` (node ID or unique prefix, `atlas_<id>@host:port`, `host:port`);
   * the daemon's outbox delivers it, with retries. `body` is any JSON value.
   */
  send(peer: string, body: unknown, o: SendOptions = {}): Promise<DeliveryView> {
    const text = o.rawJson ? body : JSON.stringify(body);
    if (typeof text !== "string") {
      return Promise.reject(
        new AtlasError("ERR_USAGE", "message body must be a JSON value (or JSON text with rawJson)"),
      );
    }
    return this.#call<DeliveryView | { msg_id: string; target: string }>("net.send", {
      target: peer,
      body: text,
      topic: o.topic ?? null,
      reply_to: o.replyTo ?? null,
      now: !o.queue,
    }).then((r) => "queued" in r ? r : { ...QUEUED, msg_id: r.msg_id, target: r.target });
  }

  /** Answer `m`: to its sender, reply_to its id, in its topic. */
  reply(m: Message, body: unknown, o: Omit<SendOptions, "replyTo"> = {}): Promise<DeliveryView> {
    return this.send(m.from, body, { topic: m.topic ?? undefined, ...o, replyTo: m.id });
  }

  /** Send `body` and resolve with the message whose reply_to is its msg_id (ERR_TIMEOUT after `timeout` ms). */
  async request(peer: string, body: unknown, o: RequestOptions = {}): Promise<Message> {
    this.#replies ??= ReplyWaiter.open(this.#paths);
    const replies = await this.#replies.catch((e) => {
      this.#replies = null;
      throw e;
    });
    // Subscribed before sending: the reply cannot arrive unseen. Registered right after the
    // daemon answers with the msg_id; a reply takes a network round trip, the answer does not.
    const q = await this.send(peer, body, o);
    return replies.wait(q.msg_id, o.timeout ?? REQUEST_TIMEOUT_MS).reply;
  }

  /**
   * Received messages as an async iterable, subscribed when this resolves: every message stored
   * after `after` (default: from now on) comes out once, in seq order, then each new one as it is
   * stored. Resume with `after` = the last `seq` handled. Paced by the consumer: a slow loop slows
   * the stream, never the node. `close()` (or leaving a for-await loop) ends it.
   */
  async inbox(o: MessagesOptions = {}): Promise<Inbox> {
    const s = await openStream<{ seq: number; after: number }>(this.#paths, "subscribe", {
      after: o.after ?? null,
      from: o.from ?? null,
      topic: o.topic ?? null,
      messages: true,
    });
    async function* read(): AsyncGenerator<Message, void, undefined> {
      try {
        for (let line = await s.next(); line !== null; line = await s.next()) {
          const p = parsePush(line);
          if (p.kind === "message") yield toMessage(p.json);
        }
      } finally {
        s.close();
      }
    }
    const it = read();
    return { seq: s.result.seq, after: s.result.after, close: () => s.close(), [Symbol.asyncIterator]: () => it };
  }

  /** Stored messages after `after` (default 0: the oldest kept), at most `limit` (default 100, ≤ 1000), oldest first. */
  async read(o: MessagesOptions & { limit?: number } = {}): Promise<Message[]> {
    const { lines } = await this.#call<{ lines: string[] }>("net.inbox", {
      after: o.after ?? 0,
      limit: o.limit ?? 100,
      from: o.from ?? null,
      topic: o.topic ?? null,
    });
    return lines.map(toMessage);
  }

  /** The received message with this msg_id, or null. */
  async message(id: string): Promise<Message | null> {
    const { line } = await this.#call<{ line: string | null }>("net.message", { id });
    return line === null ? null : toMessage(line);
  }

  /** `inbox()` as one async generator (subscribed on its first `next()`). */
  async *messages(o: MessagesOptions = {}): AsyncGenerator<Message, void, undefined> {
    yield* await this.inbox(o);
  }

  /** Session events from now on: session_up, session_down, path_changed. */
  async *events(): AsyncGenerator<SessionEventView, void, undefined> {
    const s = await openStream(this.#paths, "subscribe", { messages: false, events: true });
    try {
      for (let line = await s.next(); line !== null; line = await s.next()) {
        const p = parsePush(line);
        if (p.kind === "event") yield p.event;
      }
    } finally {
      s.close();
    }
  }

  /** Known peers (the peer store), as `net peers --json` prints them. */
  peers(): Promise<PeerView[]> {
    return this.#call<PeerView[]>("net.peers");
  }

  /** Agents the bootstrap nodes list (with `skill`, `operator`, `limit` filters). */
  async discover(q: { skill?: string; operator?: string; limit?: number } = {}): Promise<DiscoverView> {
    const { discoverView } = await import("../daemon/views.ts");
    return discoverView(await this.#call<DiscoverReport>("net.discover", { ...q }));
  }

  /** Ping `peer` `count` times, `interval` ms apart (a session is opened if needed). */
  ping(peer: string, o: { count?: number; interval?: number } = {}): Promise<PingView> {
    return this.#call<PingView>("net.ping", { target: peer, count: o.count ?? 1, interval: o.interval ?? 1000 });
  }

  /** Open (and keep) a session with `peer`. */
  connect(peer: string): Promise<SessionView> {
    return this.#call<SessionView>("net.connect", { target: peer });
  }

  /** Stop waiting for replies; stop the node if this client started it. */
  async close(): Promise<void> {
    const r = this.#replies;
    this.#replies = null;
    if (r) (await r.catch(() => null))?.close();
    this.#pool.close();
    await this.#stop?.();
  }
}
