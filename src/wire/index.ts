/** Atlas wire protocol (SPEC §5): message types, validation, frame encoding and decoding. */
export * from "./messages.ts";
export {
  fitsUtf8,
  type HostPort,
  isAddress,
  isJsonText,
  isMsgId,
  isNodeId,
  isRelayAddress,
  isWellFormed,
  parseHostPort,
  parseIPv6,
  utf8Length,
  validateMessage,
  type WireCodeName,
  WireError,
} from "./validate.ts";
export { decodeFrame, encodeFrame, FrameReader, MAX_DEPTH, MAX_VALUES, peekHeader } from "./frame.ts";
