/**
 * Wire message table and TypeScript types (SPEC §5).
 *
 * A decoded message is a flat object `{ type: "<Name>", ...payload fields }` whose field names are
 * the MessagePack map keys (snake_case). Optional fields are absent (never `undefined`/`null`)
 * in decoded messages; when encoding, `undefined` optional fields are simply omitted.
 */

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

/** Disconnect reasons of SPEC §5 (Disconnect.reason accepts any short string). */
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

/** RelayError codes (SPEC §5). */
export const RelayErrorCode = {
  TARGET_NOT_REGISTERED: 1,
  AT_CAPACITY: 2,
  SOURCE_MISMATCH: 3,
  PAIRING_TIMEOUT: 4,
  TARGET_REFUSED: 5,
  DATAGRAMS_UNAVAILABLE: 6,
  PER_SOURCE_LIMIT: 7,
} as const;

export const TRUST_LEVELS = ["bootstrap", "unknown", "verified", "relay"] as const;
export type TrustLevel = (typeof TRUST_LEVELS)[number];

/** Farcaster operator binding (SPEC §13). */
export interface OperatorInfo {
  fid: number;
  username: string;
  custody_address: string;
  message: string;
  signature: string;
}

/** A node's signed peer record (SPEC §12): data = canonical MessagePack, signature = ed25519 (64 bytes). */
export interface SignedRecord {
  data: Uint8Array;
  signature: Uint8Array;
}

/** One entry of BootstrapPeers.peers. */
export interface PeerRecord {
  node_id: string;
  public_key: Uint8Array;
  address: string;
  public_address?: string;
  relays: string[];
  name: string;
  skills: string[];
  operator_username?: string;
  last_seen: number;
  record?: SignedRecord;
}

export interface Hello {
  type: "Hello";
  node_id: string;
  name: string;
  skills: string[];
  operator?: OperatorInfo;
  wallet?: string;
  public_key: Uint8Array;
  protocol_v: number;
  timestamp: number;
  challenge: Uint8Array;
  listen_addrs?: string[];
  relays?: string[];
  /** software version */
  agent?: string;
  /** protocol features this node speaks beyond the SPEC's core, e.g. `punch/1` (docs/protocol.md) */
  features?: string[];
}

export interface HelloAck {
  type: "HelloAck";
  node_id: string;
  name: string;
  skills: string[];
  operator?: OperatorInfo;
  wallet?: string;
  public_key: Uint8Array;
  protocol_v: number;
  timestamp: number;
  challenge: Uint8Array;
  signature: Uint8Array;
  observed_addr?: string;
  listen_addrs?: string[];
  relays?: string[];
  /** software version (an addition to the SPEC table, symmetric with Hello.agent) */
  agent?: string;
  features?: string[];
}

export interface Verify {
  type: "Verify";
  signature: Uint8Array;
  /** echo of HelloAck.challenge */
  challenge: Uint8Array;
}

export interface VerifyAck {
  type: "VerifyAck";
  status: "ok" | "rejected";
  reason?: string;
  trust_level?: TrustLevel;
}

/** Message (0x10). Named AtlasMessage to avoid clashing with the DOM/lib `Message` name. */
export interface AtlasMessage {
  type: "Message";
  /** "msg_" + UUID (v7 by convention), lowercase */
  id: string;
  from: string;
  to: string;
  timestamp: number;
  reply_to?: string;
  topic?: string;
  /** JSON text */
  body: string;
}
export type Message = AtlasMessage;

export interface MessageAck {
  type: "MessageAck";
  msg_id?: string;
  status: "received" | "registered";
}

export interface BootstrapRegister {
  type: "BootstrapRegister";
  node_id: string;
  address: string;
  public_address?: string;
  timestamp: number;
  record?: SignedRecord;
}

export interface BootstrapDiscover {
  type: "BootstrapDiscover";
  skill?: string;
  operator?: string;
  limit?: number;
}

export interface BootstrapPeers {
  type: "BootstrapPeers";
  peers: PeerRecord[];
}

export interface RelayAnnounce {
  type: "RelayAnnounce";
  node_id: string;
  timestamp: number;
}

export interface RelayConnect {
  type: "RelayConnect";
  source_id: string;
  target_id: string;
  session?: number;
}

export interface RelayReady {
  type: "RelayReady";
  status: "waiting" | "ready";
  session?: number;
}

export interface RelayError {
  type: "RelayError";
  code: number;
  reason: string;
}

/** Error (0xE0). */
export interface ErrorMsg {
  type: "Error";
  code: number;
  message: string;
  ref_msg_id?: string;
}

export interface Ping {
  type: "Ping";
  ts: number;
  id: number;
}

export interface Pong {
  type: "Pong";
  ts: number;
  /** the Ping's ts */
  echo: number;
  /** the Ping's id */
  id: number;
}

/** Hole punching (docs/protocol.md): candidates and the punch packets' nonce, over a relayed session. */
export interface PunchOffer {
  type: "PunchOffer";
  nonce: Uint8Array;
  candidates: string[];
  attempt: number;
}

export interface PunchAnswer {
  type: "PunchAnswer";
  nonce: Uint8Array;
  candidates: string[];
}

export interface PunchSync {
  type: "PunchSync";
  nonce: Uint8Array;
}

export interface Disconnect {
  type: "Disconnect";
  reason: string;
  message: string;
}

export type WireMessage =
  | Hello
  | HelloAck
  | Verify
  | VerifyAck
  | AtlasMessage
  | MessageAck
  | BootstrapRegister
  | BootstrapDiscover
  | BootstrapPeers
  | RelayAnnounce
  | RelayConnect
  | RelayReady
  | RelayError
  | PunchOffer
  | PunchAnswer
  | PunchSync
  | ErrorMsg
  | Ping
  | Pong
  | Disconnect;

/** The message interface for a type name, e.g. `MessageOf<"Ping">` = Ping. */
export type MessageOf<N extends MsgTypeName> = Extract<WireMessage, { type: N }>;

/** Field limits (bytes of UTF-8 unless noted). */
export const Limits = {
  NAME_BYTES: 64,
  BIO_BYTES: 256,
  SKILLS: 32,
  SKILL_BYTES: 32,
  TOPIC_BYTES: 128,
  USERNAME_BYTES: 256,
  WALLET_BYTES: 128,
  AGENT_BYTES: 128,
  DISCONNECT_REASON_BYTES: 64,
  /** free text: reasons and messages of VerifyAck, RelayError, Error, Disconnect */
  TEXT_BYTES: 4096,
  /** OperatorInfo.message (a SIWE text) */
  SIWE_MESSAGE_BYTES: 4096,
  OPERATOR_FIELD_BYTES: 256,
  /** entries of listen_addrs / relays */
  ADDRS: 32,
  /** characters of one address */
  ADDR_CHARS: 330,
  /** entries of BootstrapPeers.peers */
  PEERS: 1000,
  /** entries of Hello/HelloAck features, and bytes of one */
  FEATURES: 16,
  FEATURE_BYTES: 32,
  /** candidates of PunchOffer / PunchAnswer, and the punch nonce */
  PUNCH_CANDIDATES: 8,
  NONCE_BYTES: 12,
  /** SignedRecord.data */
  RECORD_BYTES: 16 * 1024,
  PUBLIC_KEY_BYTES: 32,
  CHALLENGE_BYTES: 32,
  SIGNATURE_BYTES: 64,
} as const;
