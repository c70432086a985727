/** Atlas wire protocol (SPEC §5): message types, validation, frame encoding and decoding. */
export * from "./messages.ts";
export {
  WireError,
  type WireCodeName,
  type HostPort,
  isNodeId,
  isMsgId,
  isAddress,
  isRelayAddress,
  isJsonText,
  parseHostPort,
  parseIPv6,
  utf8Length,
  fitsUtf8,
  isWellFormed,
  validateMessage,
} from "./validate.ts";
export { encodeFrame, decodeFrame, FrameReader, peekHeader, MAX_DEPTH, MAX_VALUES } from "./frame.ts";
