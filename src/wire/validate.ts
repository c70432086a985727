/**
 * Field validation for every wire message (docs/protocol.md#messages "Field types and limits").
 *
 * One schema per message type (schemas.ts) drives both directions: `normalizeMessage` checks a
 * message about to be encoded, and turns a decoded MessagePack map into a typed message. It returns
 * a fresh object holding only the known fields (unknown ones are dropped), with nil/undefined
 * optional fields left out, int64 bigints turned into numbers, and (when decoding) byte fields
 * copied out of the frame buffer. Every failure is a WireError whose message names the field.
 */
import { rejected, WireError } from "./errors.ts";
import { MsgType, type MsgTypeName } from "./messages.ts";
import { describe, fill, isMap } from "./schema.ts";
import { payloadFields, type WireMessage } from "./schemas.ts";

/**
 * Validates and normalizes the payload fields of a message of type `typeName`.
 * `decoding` = true when `src` came out of the MessagePack decoder (byte fields are copied).
 * Returns `{ type: typeName, ...known fields }`, or only the payload fields when `withType` is false.
 */
export function normalizeMessage(typeName: MsgTypeName, src: unknown, decoding: boolean, withType = true): WireMessage {
  if (!isMap(src)) throw rejected(`${typeName} payload must be a map, not ${describe(src)}`, MsgType[typeName]);
  const out: Record<string, unknown> = withType ? { type: typeName } : {};
  try {
    fill(out, src, payloadFields[typeName], decoding, null);
  } catch (e) {
    if (e instanceof WireError && e.frameType === undefined) throw rejected(e.message, MsgType[typeName]);
    throw e;
  }
  return out as unknown as WireMessage;
}

function typeOf(msg: unknown): MsgTypeName {
  if (!isMap(msg)) throw rejected("a wire message must be an object");
  const t = (msg as { type?: unknown }).type;
  if (typeof t !== "string" || !Object.hasOwn(MsgType, t)) throw rejected(`unknown message type ${JSON.stringify(t)}`);
  return t as MsgTypeName;
}

/**
 * Checks a message before sending; returns the normalized copy (known fields only, optional
 * undefined fields dropped). Throws WireError.
 */
export function validateMessage(msg: WireMessage): WireMessage {
  return normalizeMessage(typeOf(msg), msg, false);
}

/** The MessagePack map that goes on the wire for `msg` (validated; no `type` key). */
export function payloadOf(msg: WireMessage): { code: number; payload: Record<string, unknown> } {
  const t = typeOf(msg);
  return { code: MsgType[t], payload: normalizeMessage(t, msg, false, false) as unknown as Record<string, unknown> };
}
