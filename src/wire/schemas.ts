/**
 * The payload of every wire message (docs/protocol.md#messages), written once: each schema below is both the runtime
 * validator (fields in wire order, with their limits) and, through `Infer`, the TypeScript type of
 * the decoded message, `{ type: "<Name>", ...payload fields }` with snake_case field names as on
 * the wire. Optional fields are absent (never `undefined`/`null`) in decoded messages; when
 * encoding, `undefined` optional fields are simply omitted.
 */
import { Limits } from "./limits.ts";
import { type MsgTypeName, TRUST_LEVELS } from "./messages.ts";
import {
  address,
  bytes,
  type Field,
  type Infer,
  int,
  intRange,
  jsonText,
  list,
  message,
  msgId,
  nodeId,
  object,
  oneOf,
  optional,
  relayAddress,
  type Shape,
  str,
  u32,
  username,
  type WireSchema,
} from "./schema.ts";

const skills = list(Limits.SKILLS, str(Limits.SKILL_BYTES), false);
const addrList = list(Limits.ADDRS, address, false);
const relayList = list(Limits.ADDRS, relayAddress, false);
const publicKey = bytes(Limits.PUBLIC_KEY_BYTES);
const challenge = bytes(Limits.CHALLENGE_BYTES);
const signature = bytes(Limits.SIGNATURE_BYTES);
const name = str(Limits.NAME_BYTES);
const text = str(Limits.TEXT_BYTES);
/** Protocol features beyond the core, e.g. `punch/1` (docs/protocol.md); older peers send none. */
const features = list(Limits.FEATURES, str(Limits.FEATURE_BYTES), false);
const candidates = list(Limits.PUNCH_CANDIDATES, address, false);
const nonce = bytes(Limits.NONCE_BYTES);

/** Farcaster operator binding (docs/protocol.md#operator-binding). */
export const OperatorInfoSchema = object("OperatorInfo", {
  fid: intRange(0, Number.MAX_SAFE_INTEGER, "a non-negative integer"),
  username: username(Limits.USERNAME_BYTES),
  custody_address: str(Limits.OPERATOR_FIELD_BYTES),
  message: str(Limits.SIWE_MESSAGE_BYTES),
  signature: str(Limits.OPERATOR_FIELD_BYTES),
});
export type OperatorInfo = Infer<typeof OperatorInfoSchema>;

/** A node's signed peer record (docs/protocol.md#bootstrap-and-discovery): data = canonical MessagePack, signature = ed25519 (64 bytes). */
export const SignedRecordSchema = object("SignedRecord", {
  data: bytes(0, Limits.RECORD_BYTES),
  signature: bytes(Limits.SIGNATURE_BYTES),
});
export type SignedRecord = Infer<typeof SignedRecordSchema>;

/** One entry of BootstrapPeers.peers. */
export const PeerRecordSchema = object("PeerRecord", {
  node_id: nodeId,
  public_key: publicKey,
  address,
  public_address: optional(address),
  relays: relayList,
  name,
  skills,
  operator_username: optional(username(Limits.USERNAME_BYTES)),
  last_seen: int,
  record: optional(SignedRecordSchema),
});
export type PeerRecord = Infer<typeof PeerRecordSchema>;

/** What each side says of itself in Hello and HelloAck: its card, key, version, time and challenge. */
const introduction = {
  node_id: nodeId,
  name,
  skills,
  operator: optional(OperatorInfoSchema),
  wallet: optional(str(Limits.WALLET_BYTES)),
  public_key: publicKey,
  protocol_v: u32,
  timestamp: int,
  challenge,
};

/** How to reach it and what it runs, after the handshake-specific fields. */
const reachability = {
  listen_addrs: optional(addrList),
  relays: optional(relayList),
  /** software version (HelloAck's is an addition to the original specification, symmetric with Hello's) */
  agent: optional(str(Limits.AGENT_BYTES)),
  features: optional(features),
};

export const HelloSchema = message("Hello", { ...introduction, ...reachability });
export type Hello = Infer<typeof HelloSchema>;

export const HelloAckSchema = message("HelloAck", {
  ...introduction,
  signature,
  observed_addr: optional(address),
  ...reachability,
});
export type HelloAck = Infer<typeof HelloAckSchema>;

export const VerifySchema = message("Verify", {
  signature,
  /** echo of HelloAck.challenge */
  challenge,
});
export type Verify = Infer<typeof VerifySchema>;

export const VerifyAckSchema = message("VerifyAck", {
  status: oneOf(["ok", "rejected"]),
  reason: optional(text),
  trust_level: optional(oneOf(TRUST_LEVELS)),
});
export type VerifyAck = Infer<typeof VerifyAckSchema>;

export const MessageSchema = message("Message", {
  /** "msg_" + UUID (v7 by convention), lowercase */
  id: msgId,
  from: nodeId,
  to: nodeId,
  timestamp: int,
  reply_to: optional(msgId),
  topic: optional(str(Limits.TOPIC_BYTES)),
  /** JSON text */
  body: jsonText,
});
/** Message (0x10). Named AtlasMessage to avoid clashing with the DOM/lib `Message` name. */
export type AtlasMessage = Infer<typeof MessageSchema>;
export type Message = AtlasMessage;

export const MessageAckSchema = message("MessageAck", {
  msg_id: optional(msgId),
  status: oneOf(["received", "registered"]),
});
export type MessageAck = Infer<typeof MessageAckSchema>;

export const BootstrapRegisterSchema = message("BootstrapRegister", {
  node_id: nodeId,
  address,
  public_address: optional(address),
  timestamp: int,
  record: optional(SignedRecordSchema),
});
export type BootstrapRegister = Infer<typeof BootstrapRegisterSchema>;

export const BootstrapDiscoverSchema = message("BootstrapDiscover", {
  skill: optional(str(Limits.SKILL_BYTES)),
  operator: optional(username(Limits.USERNAME_BYTES)),
  limit: optional(intRange(1, 0xffffffff, "a positive 32-bit integer")),
});
export type BootstrapDiscover = Infer<typeof BootstrapDiscoverSchema>;

export const BootstrapPeersSchema = message("BootstrapPeers", {
  peers: list(Limits.PEERS, PeerRecordSchema, true),
});
export type BootstrapPeers = Infer<typeof BootstrapPeersSchema>;

export const RelayAnnounceSchema = message("RelayAnnounce", {
  node_id: nodeId,
  timestamp: int,
});
export type RelayAnnounce = Infer<typeof RelayAnnounceSchema>;

export const RelayConnectSchema = message("RelayConnect", {
  source_id: nodeId,
  target_id: nodeId,
  session: optional(u32),
});
export type RelayConnect = Infer<typeof RelayConnectSchema>;

export const RelayReadySchema = message("RelayReady", {
  status: oneOf(["waiting", "ready"]),
  session: optional(u32),
});
export type RelayReady = Infer<typeof RelayReadySchema>;

export const RelayErrorSchema = message("RelayError", {
  code: u32,
  reason: text,
});
export type RelayError = Infer<typeof RelayErrorSchema>;

/** Hole punching over a relayed session (docs/protocol.md, "Hole punching"). */
export const PunchOfferSchema = message("PunchOffer", {
  /** the punch packets' STUN transaction ID */
  nonce,
  candidates,
  attempt: u32,
});
export type PunchOffer = Infer<typeof PunchOfferSchema>;

export const PunchAnswerSchema = message("PunchAnswer", {
  /** the offer's nonce, echoed */
  nonce,
  candidates,
});
export type PunchAnswer = Infer<typeof PunchAnswerSchema>;

export const PunchSyncSchema = message("PunchSync", { nonce });
export type PunchSync = Infer<typeof PunchSyncSchema>;

/** Error (0xE0). */
export const ErrorSchema = message("Error", {
  code: u32,
  message: text,
  ref_msg_id: optional(str(128)),
});
export type ErrorMsg = Infer<typeof ErrorSchema>;

export const PingSchema = message("Ping", {
  ts: int,
  id: u32,
});
export type Ping = Infer<typeof PingSchema>;

export const PongSchema = message("Pong", {
  ts: int,
  /** the Ping's ts */
  echo: int,
  /** the Ping's id */
  id: u32,
});
export type Pong = Infer<typeof PongSchema>;

export const DisconnectSchema = message("Disconnect", {
  reason: str(Limits.DISCONNECT_REASON_BYTES),
  message: text,
});
export type Disconnect = Infer<typeof DisconnectSchema>;

/** Every message type's schema; `satisfies` makes a type missing from the table a compile error. */
export const messageSchemas = {
  Hello: HelloSchema,
  HelloAck: HelloAckSchema,
  Verify: VerifySchema,
  VerifyAck: VerifyAckSchema,
  Message: MessageSchema,
  MessageAck: MessageAckSchema,
  BootstrapRegister: BootstrapRegisterSchema,
  BootstrapDiscover: BootstrapDiscoverSchema,
  BootstrapPeers: BootstrapPeersSchema,
  RelayAnnounce: RelayAnnounceSchema,
  RelayConnect: RelayConnectSchema,
  RelayReady: RelayReadySchema,
  RelayError: RelayErrorSchema,
  PunchOffer: PunchOfferSchema,
  PunchAnswer: PunchAnswerSchema,
  PunchSync: PunchSyncSchema,
  Error: ErrorSchema,
  Ping: PingSchema,
  Pong: PongSchema,
  Disconnect: DisconnectSchema,
} satisfies { [N in MsgTypeName]: WireSchema<N, Shape> };

/** The compiled payload fields of each message type (what the validator walks). */
export const payloadFields: { readonly [N in MsgTypeName]: readonly Field[] } = Object.fromEntries(
  Object.entries(messageSchemas).map(([n, s]) => [n, s.fields.list]),
) as { [N in MsgTypeName]: readonly Field[] };

/** Any wire message: the union of every schema's type, discriminated by `type`. */
export type WireMessage = { [N in MsgTypeName]: Infer<(typeof messageSchemas)[N]> }[MsgTypeName];

/** The message type for a type name, e.g. `MessageOf<"Ping">` = Ping. */
export type MessageOf<N extends MsgTypeName> = Extract<WireMessage, { type: N }>;
