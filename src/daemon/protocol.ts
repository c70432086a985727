/**
 * The control-socket protocol between the CLI (or the library, src/api/) and its daemon
 * (docs/protocol.md#control-socket-cli--daemon): one JSON request line, one JSON reply line; the
 * client may send its next request on the same connection, and closes it when done. Both carry `v`; a daemon answers a request of another version with an error
 * that says so, so an old CLI and a new daemon never misread each other.
 *
 * A streaming operation (`subscribe`) answers the same way, then keeps the connection open and
 * pushes one JSON line per stored message or event (`{"v":1,"push":…}`) until either side closes.
 */
import { MAX_PAYLOAD } from "../wire/messages.ts";

export const CONTROL_VERSION = 1;

export interface ControlRequest {
  v: number;
  op: string;
  args: Record<string, unknown>;
}

export type ControlReply =
  | { v: number; ok: true; result: unknown }
  | { v: number; ok: false; error: { code: string; message: string; exit: number } };

/** Longest Unix socket path (sun_path is 108 bytes with the terminating NUL). */
export const MAX_SOCKET_PATH = 107;

/**
 * Largest request, reply or push line accepted: a body at the wire limit (4 MiB) escaped as a JSON
 * string is at most twice as long (`"` and `\` become two characters; control characters cannot
 * appear raw in JSON text), plus room for the other fields.
 */
export const MAX_CONTROL_LINE = 2 * MAX_PAYLOAD + 64 * 1024;

/** The push lines of `subscribe`, after its reply line. */
export type PushKind = "message" | "event" | "lagged";
