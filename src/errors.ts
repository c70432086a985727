/**
 * Typed errors with stable codes (SPEC §5 protocol codes, plus local ones), and the
 * exit code each maps to (SPEC §14). Every layer throws AtlasError; the CLI prints
 * `message` as one line (or `{"error":{code,message}}` with --json) and exits with `exit`.
 */

/** Protocol error codes carried in Error frames (SPEC §5). */
export const ProtocolCode = {
  ERR_PROTOCOL_VERSION: 1001,
  ERR_HANDSHAKE_FAILED: 1002,
  ERR_HANDSHAKE_TIMEOUT: 1003,
  ERR_INVALID_IDENTITY: 1004,
  ERR_NOT_VERIFIED: 2001,
  ERR_PAYLOAD_TOO_LARGE: 2002,
  ERR_MESSAGE_REJECTED: 2003,
  ERR_RATE_LIMITED: 4001,
  ERR_INTERNAL: 5001,
} as const;
export type ProtocolCodeName = keyof typeof ProtocolCode;

/** Local error names that never travel on the wire. */
export type LocalCodeName =
  | "ERR_USAGE" // bad flags, bad target, unknown/ambiguous node ID
  | "ERR_UNREACHABLE" // no candidate answered
  | "ERR_REJECTED" // the peer refused us (handshake rejected, closed on us)
  | "ERR_TIMEOUT" // a started exchange timed out (Pong, MessageAck)
  | "ERR_NO_IDENTITY" // home not initialised
  | "ERR_CONFIG" // invalid config file / value
  | "ERR_KEY_PERMISSIONS" // key file readable by others
  | "ERR_HOME_INSECURE" // home (or a directory above it) writable or owned by another user
  | "ERR_STORE" // database unusable (corrupt, newer schema)
  | "ERR_ADDR_IN_USE" // port taken
  | "ERR_RESET" // connection reset mid-way
  | "ERR_CLOSED" // operation on a closed connection/stream
  | "ERR_DECODE" // malformed frame (mapped to 1001/2003 on the wire)
  | "ERR_IO"; // filesystem or socket failure

export type ErrorCodeName = ProtocolCodeName | LocalCodeName;

export const Exit = {
  OK: 0,
  ERROR: 1,
  USAGE: 2,
  UNREACHABLE: 3,
  REJECTED: 4,
  TIMEOUT: 5,
  NO_IDENTITY: 6,
} as const;

const defaultExit: Partial<Record<ErrorCodeName, number>> = {
  ERR_USAGE: Exit.USAGE,
  ERR_UNREACHABLE: Exit.UNREACHABLE,
  ERR_REJECTED: Exit.REJECTED,
  ERR_RATE_LIMITED: Exit.REJECTED,
  ERR_HANDSHAKE_FAILED: Exit.REJECTED,
  ERR_INVALID_IDENTITY: Exit.REJECTED,
  ERR_PROTOCOL_VERSION: Exit.REJECTED,
  ERR_NOT_VERIFIED: Exit.REJECTED,
  ERR_MESSAGE_REJECTED: Exit.REJECTED,
  ERR_HANDSHAKE_TIMEOUT: Exit.TIMEOUT,
  ERR_TIMEOUT: Exit.TIMEOUT,
  ERR_NO_IDENTITY: Exit.NO_IDENTITY,
};

export class AtlasError extends Error {
  readonly code: ErrorCodeName;
  readonly exit: number;
  constructor(code: ErrorCodeName, message: string, opts: { exit?: number; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "AtlasError";
    this.code = code;
    this.exit = opts.exit ?? defaultExit[code] ?? Exit.ERROR;
  }
  /** The numeric protocol code, when this error is one that travels on the wire. */
  get protocolCode(): number | undefined {
    return (ProtocolCode as Record<string, number>)[this.code];
  }
}

/** Name of a numeric protocol code, or ERR_INTERNAL for codes we do not know. */
export function protocolCodeName(code: number): ProtocolCodeName {
  for (const [name, value] of Object.entries(ProtocolCode)) if (value === code) return name as ProtocolCodeName;
  return "ERR_INTERNAL";
}

export function isAtlasError(e: unknown, code?: ErrorCodeName): e is AtlasError {
  return e instanceof AtlasError && (code === undefined || e.code === code);
}
