/**
 * The control-socket protocol between the CLI and its daemon: one JSON request line, one JSON
 * reply line, then the connection closes. Both carry `v`; a daemon answers a request of another
 * version with an error that says so, so an old CLI and a new daemon never misread each other.
 */
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

/** Largest request or reply line accepted. */
export const MAX_CONTROL_LINE = 8 * 1024 * 1024;
