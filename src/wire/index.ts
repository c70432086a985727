/** Atlas wire protocol (docs/protocol.md#messages): message types, validation, frame encoding and decoding. */
export * from "./messages.ts";
export { type HostPort, isAddress, isRelayAddress, parseHostPort, parseIPv6 } from "./address.ts";
export { type WireCodeName, WireError } from "./errors.ts";
export { isMsgId, isNodeId } from "./ids.ts";
export { isJsonText } from "./json-text.ts";
export { fitsUtf8, isWellFormed, utf8Length } from "./utf8.ts";
export { validateMessage } from "./validate.ts";
export { decodeFrame, encodeFrame, FrameReader, MAX_DEPTH, MAX_VALUES, peekHeader } from "./frame.ts";
