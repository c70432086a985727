/**
 * Typed errors with stable codes (docs/protocol.md#messages protocol codes, plus local ones), and the exit code each
 * maps to (README.md#commands). Every layer throws AtlasError; the CLI prints `message` as one line (or
 * `{"error":{code,message}}` with --json) and exits with `exit`.
 *
 * The codes are tables of data — number, exit code and meaning in one row — so that
 * docs/errors.md is generated from them (`npm run docs:errors`) and a test keeps it in step.
 */

/** Process exit codes (README.md#commands). */
export const Exit = {
  OK: 0,
  ERROR: 1,
  USAGE: 2,
  UNREACHABLE: 3,
  REJECTED: 4,
  TIMEOUT: 5,
  NO_IDENTITY: 6,
} as const;

/** One code's row: the exit code an error with it maps to (unless thrown with its own), and what it means. */
export interface CodeInfo {
  readonly exit: number;
  readonly meaning: string;
  /** A local name for one case of a protocol code: what it is sent as on the wire. */
  readonly wire?: ProtocolCodeName;
}

/** Protocol error codes, carried in Error frames and as QUIC application close codes (docs/protocol.md#messages). */
export const PROTOCOL_CODES = {
  ERR_PROTOCOL_VERSION: {
    code: 1001,
    exit: Exit.REJECTED,
    meaning: "the peer speaks another protocol version (Hello's protocol_v, or a frame's envelope version)",
  },
  ERR_HANDSHAKE_FAILED: {
    code: 1002,
    exit: Exit.REJECTED,
    meaning: "the handshake failed: a bad signature or certificate, Hello key ≠ TLS key, clock drift",
  },
  ERR_HANDSHAKE_TIMEOUT: {
    code: 1003,
    exit: Exit.TIMEOUT,
    meaning: "the handshake did not finish within `security.handshake_timeout`",
  },
  ERR_INVALID_IDENTITY: {
    code: 1004,
    exit: Exit.REJECTED,
    meaning: "a node ID not derived from its public key, or a peer that is not the node dialled",
  },
  ERR_NOT_VERIFIED: {
    code: 2001,
    exit: Exit.REJECTED,
    meaning: "a request before the handshake completed (or beyond `security.max_pending_streams` of them)",
  },
  ERR_PAYLOAD_TOO_LARGE: {
    code: 2002,
    exit: Exit.ERROR,
    meaning: "a frame's payload over the limit for its type",
  },
  ERR_MESSAGE_REJECTED: {
    code: 2003,
    exit: Exit.REJECTED,
    meaning: "a malformed or unexpected message, or one this node does not accept (wrong addressee, …)",
  },
  ERR_RATE_LIMITED: {
    code: 4001,
    exit: Exit.REJECTED,
    meaning: "over a rate limit or the read budget, banned, or a full bootstrap registry",
  },
  ERR_INTERNAL: {
    code: 5001,
    exit: Exit.ERROR,
    meaning: "the peer (or this node) failed on its side; also the name given to an unknown code",
  },
} as const satisfies Record<string, CodeInfo & { code: number }>;

export type ProtocolCodeName = keyof typeof PROTOCOL_CODES;

/** Name → number of each protocol code, e.g. `ProtocolCode.ERR_MESSAGE_REJECTED` is 2003. */
export const ProtocolCode = Object.fromEntries(
  Object.entries(PROTOCOL_CODES).map(([name, row]) => [name, row.code]),
) as { readonly [K in ProtocolCodeName]: (typeof PROTOCOL_CODES)[K]["code"] };

/** Local error codes: they never travel on the wire. */
export const LOCAL_CODES = {
  ERR_USAGE: { exit: Exit.USAGE, meaning: "bad flags, a bad target, an unknown or ambiguous node ID" },
  ERR_UNREACHABLE: { exit: Exit.UNREACHABLE, meaning: "no candidate address (or relay) answered" },
  ERR_REJECTED: { exit: Exit.REJECTED, meaning: "the peer refused us (handshake rejected, connection closed on us)" },
  ERR_BANNED: {
    exit: Exit.REJECTED,
    wire: "ERR_RATE_LIMITED",
    meaning: "the peer has banned us (or we it); sent on the wire as `ERR_RATE_LIMITED` (4001), `banned until <time>`",
  },
  ERR_TIMEOUT: { exit: Exit.TIMEOUT, meaning: "a started exchange timed out (Pong, MessageAck, a response frame)" },
  ERR_NO_IDENTITY: { exit: Exit.NO_IDENTITY, meaning: "the home has no identity yet (`atlas id init`)" },
  ERR_NOT_RUNNING: { exit: Exit.ERROR, meaning: "no daemon runs for this home (`atlas daemon stop`)" },
  ERR_CONFIG: { exit: Exit.ERROR, meaning: "an invalid config file or value" },
  ERR_KEY_PERMISSIONS: { exit: Exit.ERROR, meaning: "the key file is readable by others" },
  ERR_HOME_INSECURE: {
    exit: Exit.ERROR,
    meaning: "the home (or a directory above it) is writable or owned by another user",
  },
  ERR_STORE: { exit: Exit.ERROR, meaning: "the database is unusable (corrupt, or a newer schema)" },
  ERR_ADDR_IN_USE: { exit: Exit.ERROR, meaning: "the UDP port is taken" },
  ERR_RESET: { exit: Exit.ERROR, meaning: "the connection or stream was reset mid-way" },
  ERR_CLOSED: { exit: Exit.ERROR, meaning: "an operation on a closed connection or stream" },
  ERR_IO: { exit: Exit.ERROR, meaning: "a filesystem or socket failure" },
} as const satisfies Record<string, CodeInfo>;

export type LocalCodeName = keyof typeof LOCAL_CODES;

export type ErrorCodeName = ProtocolCodeName | LocalCodeName;

/** The row of a code, protocol or local; undefined for a name this version does not know. */
export function codeInfo(code: string): CodeInfo | undefined {
  return (PROTOCOL_CODES as Record<string, CodeInfo>)[code] ?? (LOCAL_CODES as Record<string, CodeInfo>)[code];
}

export class AtlasError extends Error {
  readonly code: ErrorCodeName;
  readonly exit: number;
  constructor(code: ErrorCodeName, message: string, opts: { exit?: number; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "AtlasError";
    this.code = code;
    // A code from another version (a daemon's reply) has no row here: a plain error.
    this.exit = opts.exit ?? codeInfo(code)?.exit ?? Exit.ERROR;
  }
  /** The numeric protocol code, when this error is one that travels on the wire. */
  get protocolCode(): number | undefined {
    const wire = (LOCAL_CODES as Record<string, CodeInfo>)[this.code]?.wire ?? this.code;
    return (ProtocolCode as Record<string, number>)[wire];
  }
}

/** Name of a numeric protocol code, or ERR_INTERNAL for codes we do not know. */
export function protocolCodeName(code: number): ProtocolCodeName {
  for (const [name, value] of Object.entries(ProtocolCode)) if (value === code) return name as ProtocolCodeName;
  return "ERR_INTERNAL";
}

/**
 * The local name of a code a peer sent with its message: a ban travels as 4001 (docs/protocol.md#messages, docs/protocol.md#handshake) and
 * reads as ERR_BANNED here, so that it is told apart from a rate limit (a ban is final: exit 4).
 */
export function remoteCodeName(code: number, message: string): ErrorCodeName {
  const name = protocolCodeName(code);
  return name === "ERR_RATE_LIMITED" && /\bbanned\b/i.test(message) ? "ERR_BANNED" : name;
}

export function isAtlasError(e: unknown, code?: ErrorCodeName): e is AtlasError {
  return e instanceof AtlasError && (code === undefined || e.code === code);
}
