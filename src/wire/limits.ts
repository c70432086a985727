/**
 * Field limits of the wire format (docs/protocol.md#messages "Field types and limits"), in one place for everything
 * that must stay within them: the message schemas enforce them on every frame, and modules that
 * build what will travel (the profile, signed records, the CLI) check against the same numbers so
 * that anything they accept can be sent.
 */

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
  /** candidates of PunchOffer / PunchAnswer, and the punch nonce (a STUN transaction ID) */
  PUNCH_CANDIDATES: 8,
  NONCE_BYTES: 12,
  /** SignedRecord.data */
  RECORD_BYTES: 16 * 1024,
  PUBLIC_KEY_BYTES: 32,
  CHALLENGE_BYTES: 32,
  SIGNATURE_BYTES: 64,
} as const;
