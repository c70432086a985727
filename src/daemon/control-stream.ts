/**
 * The client side of a streaming control operation (`subscribe`, docs/protocol.md#control-socket-cli--daemon):
 * the reply line, then pushed lines read one at a time. Reading is paced by the consumer — the
 * socket is paused while a few lines wait unread — so the daemon sees a slow consumer as a slow
 * socket and holds back (src/daemon/subscribe.ts), and this process holds little either.
 */
import { connect } from "node:net";
import type { HomePaths } from "../config/paths.ts";
import { AtlasError, type ErrorCodeName } from "../errors.ts";
import { CONTROL_VERSION, type ControlReply, MAX_CONTROL_LINE } from "./protocol.ts";
import { MESSAGE_PUSH_PREFIX } from "./subscribe.ts";
import type { SessionEventView } from "./shapes.ts";

/** Lines buffered here before the socket is paused. */
const READ_AHEAD_LINES = 64;

export interface ControlStream<R> {
  result: R;
  /** The next pushed line; null once the stream ended (the daemon stopped, or close()). */
  next(): Promise<string | null>;
  close(): void;
}

/** One pushed line, decoded; a message keeps its JSON text (its body verbatim). */
export type Push =
  | { kind: "message"; json: string }
  | { kind: "event"; event: SessionEventView }
  | { kind: "lagged"; dropped: number };

export function parsePush(line: string): Push {
  if (line.startsWith(MESSAGE_PUSH_PREFIX) && line.endsWith("}")) {
    return { kind: "message", json: line.slice(MESSAGE_PUSH_PREFIX.length, -1) };
  }
  const p = JSON.parse(line) as { push?: string; event?: SessionEventView; dropped_events?: number };
  if (p.push === "event" && p.event) return { kind: "event", event: p.event };
  if (p.push === "lagged") return { kind: "lagged", dropped: Number(p.dropped_events) };
  throw new AtlasError("ERR_IO", `unexpected line from the daemon: ${line.slice(0, 80)}`);
}

export function openStream<R>(paths: HomePaths, op: string, args: Record<string, unknown>): Promise<ControlStream<R>> {
  return new Promise((resolve, reject) => {
    const s = connect(paths.sockFile);
    const lines: string[] = [];
    let waiter: ((l: string | null) => void) | null = null;
    let ended = false;
    let answered = false;
    let buf = "";
    const end = () => {
      ended = true;
      waiter?.(null);
      waiter = null;
    };
    const deliver = (line: string) => {
      if (waiter) {
        const w = waiter;
        waiter = null;
        return w(line);
      }
      lines.push(line);
      if (lines.length >= READ_AHEAD_LINES) s.pause();
    };
    const first = (line: string) => {
      let reply: ControlReply;
      try {
        reply = JSON.parse(line);
      } catch {
        s.destroy();
        return reject(new AtlasError("ERR_IO", "malformed reply from the daemon"));
      }
      if (!reply.ok) {
        s.destroy();
        const e = reply.error;
        return reject(new AtlasError(e.code as ErrorCodeName, e.message, { exit: e.exit }));
      }
      answered = true;
      resolve({
        result: reply.result as R,
        next: () => {
          const l = lines.shift();
          if (lines.length < READ_AHEAD_LINES / 2) s.resume();
          if (l !== undefined) return Promise.resolve(l);
          if (ended) return Promise.resolve(null);
          return new Promise((r) => (waiter = r));
        },
        close: () => (s.destroy(), end()),
      });
    };
    s.setEncoding("utf8");
    s.on("connect", () => s.write(JSON.stringify({ v: CONTROL_VERSION, op, args }) + "\n"));
    s.on("data", (d: string) => {
      let from = buf.length;
      buf += d;
      for (;;) {
        const nl = buf.indexOf("\n", from);
        if (nl < 0) break;
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        from = 0;
        if (answered) deliver(line);
        else first(line);
      }
      if (buf.length > MAX_CONTROL_LINE) s.destroy();
    });
    s.on("error", (e) => {
      if (!answered) reject(new AtlasError("ERR_IO", `cannot reach the daemon at ${paths.sockFile}: ${e.message}`));
    });
    s.on("close", () => {
      if (!answered) reject(new AtlasError("ERR_IO", "the daemon closed the control connection without answering"));
      end();
    });
  });
}
