import { connect } from "node:net";
import { CONTROL_CALL_TIMEOUT_MS } from "../config/durations.ts";
import type { HomePaths } from "../config/paths.ts";
import { AtlasError, type ErrorCodeName } from "../errors.ts";
import { CONTROL_VERSION, type ControlReply, MAX_CONTROL_LINE } from "./protocol.ts";

/** Ask the home's daemon to run `op`; its typed error is rethrown here with the same exit code. */
export function callDaemon<T = unknown>(
  paths: HomePaths,
  op: string,
  args: Record<string, unknown>,
  timeoutMs = CONTROL_CALL_TIMEOUT_MS,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const s = connect(paths.sockFile);
    let buf = "";
    let settled = false;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(t);
      s.destroy();
      fn();
    };
    const t = setTimeout(
      () =>
        finish(() => reject(new AtlasError("ERR_TIMEOUT", `the daemon did not answer within ${timeoutMs / 1000} s`))),
      timeoutMs,
    );
    s.setEncoding("utf8");
    s.on("connect", () => s.write(JSON.stringify({ v: CONTROL_VERSION, op, args }) + "\n"));
    s.on("data", (d: string) => {
      buf += d;
      if (buf.length > MAX_CONTROL_LINE) {
        return finish(() => reject(new AtlasError("ERR_IO", "oversized reply from the daemon")));
      }
      const nl = buf.indexOf("\n");
      if (nl < 0) return;
      let result: T;
      try {
        result = decodeReply<T>(buf.slice(0, nl));
      } catch (e) {
        return finish(() => reject(e));
      }
      finish(() => resolve(result));
    });
    s.on(
      "error",
      (e) =>
        finish(() => reject(new AtlasError("ERR_IO", `cannot reach the daemon at ${paths.sockFile}: ${e.message}`))),
    );
    s.on(
      "close",
      () =>
        finish(() => reject(new AtlasError("ERR_IO", "the daemon closed the control connection without answering"))),
    );
  });
}

/** A reply line's result; its error rethrown as the AtlasError it was (same code and exit code). */
export function decodeReply<T>(line: string): T {
  let reply: ControlReply;
  try {
    reply = JSON.parse(line);
  } catch {
    throw new AtlasError("ERR_IO", "malformed reply from the daemon");
  }
  if (reply.v !== CONTROL_VERSION) {
    throw new AtlasError(
      "ERR_IO",
      `the daemon speaks control protocol ${reply.v}, this atlas ${CONTROL_VERSION}: restart the daemon`,
    );
  }
  if (!reply.ok) {
    throw new AtlasError(reply.error.code as ErrorCodeName, reply.error.message, { exit: reply.error.exit });
  }
  return reply.result as T;
}
