import { PIPE_BURST_SLICE_MS, PIPE_END_WAIT_MS } from "../../config/durations.ts";
import { AtlasError } from "../../errors.ts";
import type { QuicStream } from "../../transport/stream.ts";
import { FramedStream } from "../../wire/framed-stream.ts";
import type { WireMessage } from "../../wire/messages.ts";

/** What a pipe needs from its session. */
export interface PipeHost {
  /** Watch the peer's liveness while `stream` waits for answers (Session's one watch). */
  watch(stream: QuicStream): void;
  unwatch(stream: QuicStream): void;
  /** An answer came: the peer is alive. */
  heard(): void;
  /** A request got no answer in time: the session is dropped, as for a request on its own stream. */
  timedOut(): void;
  /** The pipe takes no more requests (its FIN is sent, or it failed). */
  retired(pipe: RequestPipe): void;
}

interface Waiting {
  resolve: (res: WireMessage) => void;
  reject: (e: Error) => void;
  deadline: number;
  timeoutMs: number;
}

/**
 * The requester's end of a pipe (docs/protocol.md#pipelined-requests): request frames written back
 * to back on one stream and answered in the order written. The session opens one when a request
 * is already outstanding, and the pipe ends itself (FIN) at the end of a turn in which none of
 * its own is; a later request opens a new one. States: opening (waiting for stream credit) →
 * open → ended (FIN sent, waiting for the responder's) or failed; only an opening or open pipe
 * takes requests.
 *
 * Deadlines: one timer per pipe, armed at the earliest request's deadline (answers come in order,
 * so that is almost always the oldest); a request past its deadline fails with ERR_TIMEOUT and the
 * session is dropped, as on a stream of its own.
 */
export class RequestPipe {
  private fs: FramedStream | null = null;
  /** Requests made while the stream waits for credit, in order. */
  private readonly unsent: WireMessage[] = [];
  private readonly waiting: Waiting[] = [];
  private retired = false;
  private endTimer: ReturnType<typeof setTimeout> | null = null;
  /** Empty, and ending at the end of this turn unless a request comes. */
  private lingering = false;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private timerAt = Infinity;

  constructor(private readonly host: PipeHost, stream: Promise<QuicStream>) {
    stream.then((s) => {
      if (this.waiting.length === 0) return s.abort(0); // failed (timed out) while it waited for credit
      s.burstSliceMs = PIPE_BURST_SLICE_MS;
      const fs = this.fs = new FramedStream(s);
      // Written here, in the turn `fs` appears: a request made after this writes at once, and
      // must not overtake these (answers are matched to requests by their order).
      for (const req of this.unsent.splice(0)) this.send(fs, req);
      void this.readAnswers(fs);
    }, (e) => this.failAll(e as Error));
  }

  /** Whether the pipe takes another request. */
  get open(): boolean {
    return !this.retired;
  }

  /** Send `req` on the pipe; resolves with its answer (an Error frame included). */
  request(req: WireMessage, timeoutMs: number): Promise<WireMessage> {
    return new Promise((resolve, reject) => {
      const deadline = Date.now() + timeoutMs;
      this.waiting.push({ resolve, reject, deadline, timeoutMs });
      if (deadline < this.timerAt) this.arm(deadline);
      if (this.fs) this.send(this.fs, req);
      else this.unsent.push(req);
    });
  }

  private send(fs: FramedStream, req: WireMessage): void {
    this.host.watch(fs.stream);
    // A refused frame stops our writes (STOP_SENDING): its Error, then the FIN, still come on
    // the read side and settle every request, so a failed write needs no handling of its own.
    fs.write(req).catch(() => {});
  }

  private async readAnswers(fs: FramedStream): Promise<void> {
    try {
      for (;;) {
        const res = await fs.read(); // deadlines: the pipe's timer, and PIPE_END_WAIT_MS once ended
        if (res === null) break;
        const w = this.waiting.shift();
        if (!w) throw new AtlasError("ERR_MESSAGE_REJECTED", "an answer on a pipe with no request waiting");
        this.host.heard();
        w.resolve(res);
        if (this.waiting.length === 0) this.idle(fs);
      }
      this.failAll(new AtlasError("ERR_RESET", "peer closed the request stream without answering"));
    } catch (e) {
      this.failAll(e as Error);
      fs.stream.abort(0);
    } finally {
      if (this.endTimer) clearTimeout(this.endTimer);
    }
  }

  /**
   * No request of ours is outstanding. Answers tend to come together, so their callers' next
   * requests are usually made in this same turn: the pipe takes them. If none came by the end of
   * the turn, FIN (the responder answers with its own) and take no more.
   */
  private idle(fs: FramedStream): void {
    this.disarm();
    this.host.unwatch(fs.stream);
    if (this.retired || this.lingering) return;
    this.lingering = true;
    setImmediate(() => {
      this.lingering = false;
      if (this.waiting.length > 0 || this.retired) return;
      this.retire();
      fs.end().catch(() => {});
      // The responder's FIN follows ours at once; a peer that never sends it must not keep one
      // of our streams (and its credit) for the life of the session.
      this.endTimer = setTimeout(() => fs.stream.abort(0), PIPE_END_WAIT_MS);
      this.endTimer.unref();
    });
  }

  private retire(): void {
    if (this.retired) return;
    this.retired = true;
    this.host.retired(this);
  }

  private failAll(e: Error): void {
    this.retire();
    this.unsent.length = 0;
    this.disarm();
    if (this.fs) this.host.unwatch(this.fs.stream);
    for (const w of this.waiting.splice(0)) w.reject(e);
  }

  private arm(at: number): void {
    this.disarm();
    this.timerAt = at;
    this.timer = setTimeout(this.expire, Math.max(0, at - Date.now()));
  }

  private disarm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.timerAt = Infinity;
  }

  private expire = (): void => {
    this.timer = null;
    this.timerAt = Infinity;
    const now = Date.now();
    const late = this.waiting.find((w) => w.deadline <= now);
    if (late && !this.fs) {
      // Nothing was sent: the peer's stream credit did not come in time, as for a request of its own.
      return this.failAll(new AtlasError("ERR_TIMEOUT", `no stream credit from the peer within ${late.timeoutMs} ms`));
    }
    if (late) {
      // Answers come in order: the ones behind a late request cannot come before it.
      this.failAll(new AtlasError("ERR_TIMEOUT", `no frame from peer within ${late.timeoutMs / 1000} s`));
      this.fs?.stream.abort(0);
      this.host.timedOut();
      return;
    }
    if (this.waiting.length > 0) this.arm(Math.min(...this.waiting.map((w) => w.deadline)));
  };
}
