/**
 * The wire message table (docs/protocol.md#messages): envelope constants, the type byte of each message, and the
 * enumerations that travel in messages. The message types themselves are derived from their
 * schemas in schemas.ts and re-exported here, so that `import type { Hello } from "./messages.ts"`
 * keeps naming the one definition; the field limits live in limits.ts, also re-exported.
 */

export { Limits } from "./limits.ts";
export type {
  AtlasMessage,
  BootstrapDiscover,
  BootstrapPeers,
  BootstrapRegister,
  Disconnect,
  ErrorMsg,
  Hello,
  HelloAck,
  Message,
  MessageAck,
  MessageOf,
  OperatorInfo,
  PeerRecord,
  Ping,
  Pong,
  PunchAnswer,
  PunchOffer,
  PunchSync,
  RelayAnnounce,
  RelayConnect,
  RelayError,
  RelayReady,
  SignedRecord,
  Verify,
  VerifyAck,
  WireMessage,
} from "./schemas.ts";

/** Envelope magic bytes. */
export const FRAME_MAGIC = [0xac, 0x01] as const;
/** Envelope version byte. */
export const WIRE_VERSION = 1;
/** Envelope header length: magic(2) + version(1) + type(1) + length(4, big-endian). */
export const HEADER_LEN = 8;
/** Maximum payload after the handshake: 4 MiB. */
export const MAX_PAYLOAD = 4 * 1024 * 1024;
/** Maximum payload before the handshake completes: 64 KiB. */
export const PRE_HANDSHAKE_MAX_PAYLOAD = 64 * 1024;
/** The handshake protocol version this implementation speaks (Hello.protocol_v). */
export const PROTOCOL_V = 1;

export const MsgType = {
  Hello: 0x01,
  HelloAck: 0x02,
  Verify: 0x03,
  VerifyAck: 0x04,
  Message: 0x10,
  MessageAck: 0x11,
  BootstrapRegister: 0x20,
  BootstrapDiscover: 0x21,
  BootstrapPeers: 0x22,
  RelayAnnounce: 0x30,
  RelayConnect: 0x31,
  RelayReady: 0x32,
  RelayError: 0x33,
  PunchOffer: 0x40,
  PunchAnswer: 0x41,
  PunchSync: 0x42,
  Error: 0xe0,
  Ping: 0xf0,
  Pong: 0xf1,
  Disconnect: 0xff,
} as const;
export type MsgTypeName = keyof typeof MsgType;
export type MsgTypeCode = (typeof MsgType)[MsgTypeName];

const typeNames: (MsgTypeName | undefined)[] = new Array<MsgTypeName | undefined>(256).fill(undefined);
for (const [name, code] of Object.entries(MsgType)) typeNames[code] = name as MsgTypeName;

/** Name of a message type byte, or undefined for a type this version does not know. */
export function msgTypeName(code: number): MsgTypeName | undefined {
  return typeNames[code];
}

/** Disconnect reasons of docs/protocol.md#messages (Disconnect.reason accepts any short string). */
export const DISCONNECT_SHUTDOWN = "DISCONNECT_SHUTDOWN";
export const DISCONNECT_IDLE = "DISCONNECT_IDLE";
export const DISCONNECT_BANNED = "DISCONNECT_BANNED";
export const DISCONNECT_PROTOCOL_ERROR = "DISCONNECT_PROTOCOL_ERROR";
export const DISCONNECT_REPLACED = "DISCONNECT_REPLACED";
export const DisconnectReason = {
  SHUTDOWN: DISCONNECT_SHUTDOWN,
  IDLE: DISCONNECT_IDLE,
  BANNED: DISCONNECT_BANNED,
  PROTOCOL_ERROR: DISCONNECT_PROTOCOL_ERROR,
  REPLACED: DISCONNECT_REPLACED,
} as const;

/** RelayError codes (docs/protocol.md#messages; 8 is an Atlas extension): their table is in relay-errors.ts. */
export { RelayErrorCode, type RelayErrorCodeName } from "./relay-errors.ts";

export const TRUST_LEVELS = ["bootstrap", "unknown", "verified", "relay"] as const;
export type TrustLevel = (typeof TRUST_LEVELS)[number];
