/**
 * Replies to this client's requests: one `subscribe` stream per client, opened before the first
 * request is sent (a reply can never arrive unseen), each pushed message matched by its reply_to
 * against the requests still waiting. Nothing else is kept: messages nobody waits for pass by.
 */
import type { HomePaths } from "../config/paths.ts";
import { type ControlStream, openStream, parsePush } from "../daemon/control-stream.ts";
import { AtlasError } from "../errors.ts";
import { type Message, toMessage } from "./message.ts";

/** Unclaimed replies kept (see #early). */
const EARLY_REPLIES = 64;

export class ReplyWaiter {
  readonly #stream: ControlStream<unknown>;
  readonly #pending = new Map<string, (m: Message | AtlasError) => void>();
  /**
   * The last few replies nobody waited for yet: a reply pushed before `wait()` is registered
   * (which would take a network round trip beating a local one) still finds its request.
   */
  readonly #early = new Map<string, Message>();

  private constructor(stream: ControlStream<unknown>) {
    this.#stream = stream;
    void this.#pump();
  }

  static async open(paths: HomePaths): Promise<ReplyWaiter> {
    return new ReplyWaiter(await openStream(paths, "subscribe", { messages: true, replies: true }));
  }

  /** Resolve with the message whose reply_to is `msgId`, or reject after `timeoutMs`. */
  wait(msgId: string, timeoutMs: number): { reply: Promise<Message>; cancel(): void } {
    let cancel!: () => void;
    const reply = new Promise<Message>((resolve, reject) => {
      const t = setTimeout(
        () => done(new AtlasError("ERR_TIMEOUT", `no reply to ${msgId} within ${timeoutMs / 1000} s`)),
        timeoutMs,
      );
      const done = (m: Message | AtlasError) => {
        clearTimeout(t);
        this.#pending.delete(msgId);
        if (m instanceof AtlasError) reject(m);
        else resolve(m);
      };
      cancel = () => done(new AtlasError("ERR_CLOSED", "the request was cancelled"));
      const early = this.#early.get(msgId);
      if (early) return void (this.#early.delete(msgId), done(early));
      this.#pending.set(msgId, done);
    });
    return { reply, cancel };
  }

  close(): void {
    this.#stream.close();
  }

  async #pump(): Promise<void> {
    for (let line = await this.#stream.next(); line !== null; line = await this.#stream.next()) {
      const p = parsePush(line);
      if (p.kind !== "message") continue;
      const m = toMessage(p.json);
      if (m.reply_to === null) continue;
      const done = this.#pending.get(m.reply_to);
      if (done) done(m);
      else {
        this.#early.set(m.reply_to, m);
        if (this.#early.size > EARLY_REPLIES) this.#early.delete(this.#early.keys().next().value!);
      }
    }
    const gone = new AtlasError("ERR_CLOSED", "the daemon closed the stream before the reply came");
    for (const done of [...this.#pending.values()]) done(gone);
  }
}
