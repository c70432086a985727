/**
 * Control calls over kept-open connections (the library's, src/api/): a connection is reused for
 * the next call instead of a connect per call, which an agent making many calls in a row pays on
 * every one (issue 12's request→reply round trip has two on its path). At most
 * CONTROL_POOL_IDLE connections wait idle, each closed after CONTROL_POOL_IDLE_MS — well before the
 * daemon would close it (CONTROL_REQUEST_WAIT_MS), so a reused connection is never one the daemon
 * is closing. A call in flight is never retried: a broken connection is the call's error.
 */
import { connect, type Socket } from "node:net";
import { CONTROL_CALL_TIMEOUT_MS, CONTROL_POOL_IDLE_MS } from "../config/durations.ts";
import type { HomePaths } from "../config/paths.ts";
import { AtlasError } from "../errors.ts";
import { decodeReply } from "./control-client.ts";
import { CONTROL_VERSION, MAX_CONTROL_LINE } from "./protocol.ts";

/** Idle connections kept per pool. */
const CONTROL_POOL_IDLE = 4;

interface Idle {
  s: Socket;
  timer: ReturnType<typeof setTimeout>;
  onGone: () => void;
}

export class ControlPool {
  readonly #paths: HomePaths;
  #idle: Idle[] = [];
  #closed = false;

  constructor(paths: HomePaths) {
    this.#paths = paths;
  }

  call<T>(op: string, args: Record<string, unknown>, timeoutMs = CONTROL_CALL_TIMEOUT_MS): Promise<T> {
    const kept = this.#idle.pop();
    if (kept) {
      clearTimeout(kept.timer);
      kept.s.off("close", kept.onGone);
      kept.s.off("error", kept.onGone);
      kept.s.ref();
    }
    const s = kept?.s ?? this.#open();
    return new Promise<T>((resolve, reject) => {
      let buf = "";
      const done = (keep: boolean, fn: () => void) => {
        clearTimeout(t);
        s.off("data", onData);
        s.off("error", onError);
        s.off("close", onClose);
        if (keep) this.#release(s);
        else s.destroy();
        fn();
      };
      const onData = (d: string) => {
        const from = buf.length;
        buf += d;
        const nl = buf.indexOf("\n", from);
        if (nl < 0) {
          if (buf.length > MAX_CONTROL_LINE) done(false, () => reject(new AtlasError("ERR_IO", "oversized reply")));
          return;
        }
        const line = buf.slice(0, nl);
        // A whole reply line (an error reply too) leaves the connection ready for the next call.
        const keep = nl === buf.length - 1 && line.startsWith(`{"v":${CONTROL_VERSION},`);
        try {
          const r = decodeReply<T>(line);
          done(keep, () => resolve(r));
        } catch (e) {
          done(keep, () => reject(e));
        }
      };
      const onError = (e: Error) =>
        done(
          false,
          () => reject(new AtlasError("ERR_IO", `cannot reach the daemon at ${this.#paths.sockFile}: ${e.message}`)),
        );
      const onClose = () =>
        done(
          false,
          () => reject(new AtlasError("ERR_IO", "the daemon closed the control connection without answering")),
        );
      const t = setTimeout(
        () =>
          done(
            false,
            () => reject(new AtlasError("ERR_TIMEOUT", `the daemon did not answer within ${timeoutMs / 1000} s`)),
          ),
        timeoutMs,
      );
      s.on("data", onData);
      s.on("error", onError);
      s.on("close", onClose);
      s.write(JSON.stringify({ v: CONTROL_VERSION, op, args }) + "\n");
    });
  }

  /** Connections waiting idle for the next call. */
  get idle(): number {
    return this.#idle.length;
  }

  /** Close every idle connection; later calls open new ones. */
  close(): void {
    this.#closed = true;
    for (const i of this.#idle.splice(0)) {
      clearTimeout(i.timer);
      i.s.destroy();
    }
  }

  #open(): Socket {
    const s = connect(this.#paths.sockFile);
    s.setEncoding("utf8");
    return s;
  }

  #release(s: Socket): void {
    if (this.#closed || this.#idle.length >= CONTROL_POOL_IDLE || s.destroyed) return void s.destroy();
    // Closed idle (or the daemon going away while it waits): dropped from the pool.
    const onGone = () => {
      this.#idle = this.#idle.filter((i) => i !== idle);
      s.destroy();
    };
    const idle: Idle = { s, timer: setTimeout(onGone, CONTROL_POOL_IDLE_MS), onGone };
    idle.timer.unref();
    s.unref(); // an idle connection does not keep the program alive
    s.once("close", onGone);
    s.once("error", onGone);
    this.#idle.push(idle);
  }
}
