import type { Socket } from "node:net";
import { CONTROL_LIMITS } from "../config/defaults.ts";
import type { PushSink } from "../util/service.ts";

/**
 * The push side of a streaming control connection. `push` only appends to the socket while its
 * unread output is below the high water mark, so a client that stops reading costs the daemon at
 * most that much (plus what the kernel buffers), however much arrives meanwhile.
 */
export function socketSink(s: Socket, ready: Promise<void>): PushSink {
  let gone = false;
  const closed = new Promise<void>((resolve) => s.once("close", () => (gone = true, resolve())));
  const below = () => s.writableLength < CONTROL_LIMITS.PUSH_HIGH_WATER_BYTES;
  return {
    ready,
    closed,
    isClosed: () => gone || s.destroyed,
    push(line) {
      if (gone || s.destroyed) return false;
      s.write(line + "\n");
      return below();
    },
    drained() {
      if (gone || s.destroyed) return Promise.resolve(false);
      if (below()) return Promise.resolve(true);
      return new Promise((resolve) => {
        const done = (v: boolean) => () => {
          s.off("drain", onDrain);
          s.off("close", onClose);
          resolve(v);
        };
        const onDrain = done(true);
        const onClose = done(false);
        s.once("drain", onDrain);
        s.once("close", onClose);
      });
    },
  };
}
