/**
 * Signed peer records (docs/protocol.md#bootstrap-and-discovery SHOULD): a node's own statement of how to reach it, signed with
 * its node key, which bootstrap nodes pass through unchanged. A bootstrap node can therefore
 * drop or withhold a record, but it cannot forge or alter another node's addresses or skills.
 *
 *   record = { data: canonical MessagePack of {public_key, address, public_address, relays, name,
 *              skills, operator_username, seq, ts},
 *              signature: ed25519 over "atlas-record-v1" ‖ data }
 *
 * Canonical here means: every one of the nine keys present (absent optional values as nil), keys
 * sorted bytewise, integers in their shortest MessagePack form. Receivers never re-encode: they
 * check the signature over the bytes they got, then decode and validate the fields.
 *
 * `seq` only ever grows (the signer uses milliseconds since the epoch, bumped past the last one it
 * used), so a receiver that keeps the highest seq it has seen (peers.record_seq) refuses a replay
 * of an older record. `operator_username` is the signer's claim, never proof of a binding.
 */
import { Decoder, Encoder } from "@msgpack/msgpack";
import { AtlasError } from "../errors.ts";
import type { Identity } from "../identity/identity.ts";
import { verifyEd25519 } from "../identity/keys.ts";
import { nodeIdFromPublicKey } from "../identity/node-id.ts";
import { Limits, type SignedRecord } from "../wire/messages.ts";
import { isAddress, isRelayAddress } from "../wire/address.ts";
import { isNodeId } from "../wire/ids.ts";
import { fitsUtf8 } from "../wire/utf8.ts";

/** Domain separation: a node key never signs bytes a peer could pass off as something else. */
export const RECORD_DOMAIN = "atlas-record-v1";
const DOMAIN_BYTES = new TextEncoder().encode(RECORD_DOMAIN);

/** What a node says about itself in its record (everything but the key, seq and ts). */
export interface RecordFields {
  address: string;
  public_address?: string;
  relays: string[];
  name: string;
  skills: string[];
  operator_username?: string;
}

/** The decoded, checked content of a record. */
export interface RecordData extends RecordFields {
  public_key: Uint8Array;
  seq: number;
  ts: number;
}

const encoder = new Encoder({ sortKeys: true, ignoreUndefined: false, initialBufferSize: 512 });
const decoder = new Decoder({
  maxStrLength: Limits.RECORD_BYTES,
  maxBinLength: Limits.RECORD_BYTES,
  maxArrayLength: 64,
  maxMapLength: 32,
  maxExtLength: 0,
});

function signedBytes(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(DOMAIN_BYTES.length + data.length);
  out.set(DOMAIN_BYTES, 0);
  out.set(data, DOMAIN_BYTES.length);
  return out;
}

/** The canonical MessagePack of a record's content. */
export function encodeRecordData(d: RecordData): Uint8Array {
  const map = {
    public_key: d.public_key,
    address: d.address,
    public_address: d.public_address ?? null,
    relays: [...d.relays],
    name: d.name,
    skills: [...d.skills],
    operator_username: d.operator_username ?? null,
    seq: d.seq,
    ts: d.ts,
  };
  return encoder.encode(map).slice();
}

let lastSeq = 0;
/** A fresh, strictly increasing sequence number (ms since the epoch, never repeated in a process). */
export function nextSeq(): number {
  lastSeq = Math.max(lastSeq + 1, Date.now());
  return lastSeq;
}

/** Sign a record for `identity`. `seq` defaults to nextSeq(); `ts` to now (Unix seconds). */
export function makeRecord(
  identity: Identity,
  fields: RecordFields,
  seq: number = nextSeq(),
  ts: number = Math.floor(Date.now() / 1000),
): SignedRecord {
  const data = encodeRecordData({ ...fields, public_key: identity.publicKey, seq, ts });
  if (data.length > Limits.RECORD_BYTES) {
    throw new AtlasError(
      "ERR_INTERNAL",
      `peer record is ${data.length} bytes, above the ${Limits.RECORD_BYTES}-byte limit`,
    );
  }
  return { data, signature: identity.sign(signedBytes(data)) };
}

function bad(why: string): AtlasError {
  return new AtlasError("ERR_MESSAGE_REJECTED", `invalid peer record: ${why}`);
}

const isStr = (v: unknown, max: number): v is string => typeof v === "string" && fitsUtf8(v, max);
const isInt = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v);
const strList = (v: unknown, max: number, each: (s: string) => boolean): v is string[] =>
  Array.isArray(v) && v.length <= max && v.every((s) => typeof s === "string" && each(s));

/**
 * Check `record` as the record of `nodeId`: the key inside hashes to the node ID and signed it,
 * and every field is well-formed. Returns the decoded content; throws ERR_MESSAGE_REJECTED.
 */
export function verifyRecord(nodeId: string, record: SignedRecord): RecordData {
  if (!isNodeId(nodeId)) throw bad("not a node ID");
  if (!(record?.data instanceof Uint8Array) || !(record.signature instanceof Uint8Array)) {
    throw bad("data and signature must be bytes");
  }
  if (record.data.length > Limits.RECORD_BYTES) throw bad(`data above ${Limits.RECORD_BYTES} bytes`);
  if (record.signature.length !== Limits.SIGNATURE_BYTES) throw bad("signature must be 64 bytes");
  let m: unknown;
  try {
    m = decoder.decode(record.data);
  } catch (e) {
    throw bad(`data is not MessagePack (${(e as Error).message})`);
  }
  if (typeof m !== "object" || m === null || Array.isArray(m) || m instanceof Uint8Array) {
    throw bad("data is not a map");
  }
  const d = m as Record<string, unknown>;
  const pk = d.public_key;
  if (!(pk instanceof Uint8Array) || pk.length !== Limits.PUBLIC_KEY_BYTES) throw bad("public_key must be 32 bytes");
  if (nodeIdFromPublicKey(pk) !== nodeId) throw bad("its key does not hash to the node ID");
  if (!verifyEd25519(pk, signedBytes(record.data), record.signature)) throw bad("bad signature");
  // Signed by the node itself from here on; still check it is something we can store and show.
  if (!isAddress(d.address)) throw bad("address must be host:port");
  if (d.public_address != null && !isAddress(d.public_address)) throw bad("public_address must be host:port");
  if (!strList(d.relays, Limits.ADDRS, isRelayAddress)) throw bad("relays must be a list of addresses");
  if (!isStr(d.name, Limits.NAME_BYTES)) throw bad("name must be a string");
  if (!strList(d.skills, Limits.SKILLS, (s) => fitsUtf8(s, Limits.SKILL_BYTES))) {
    throw bad("skills must be a list of short strings");
  }
  if (
    d.operator_username != null &&
    !(isStr(d.operator_username, Limits.USERNAME_BYTES) && !d.operator_username.includes("@"))
  ) throw bad("operator_username must be a username");
  if (!isInt(d.seq) || d.seq < 0) throw bad("seq must be a non-negative integer");
  if (!isInt(d.ts)) throw bad("ts must be an integer");
  const out: RecordData = {
    public_key: Uint8Array.from(pk),
    address: d.address,
    relays: d.relays,
    name: d.name,
    skills: d.skills,
    seq: d.seq,
    ts: d.ts,
  };
  if (typeof d.public_address === "string") out.public_address = d.public_address;
  if (typeof d.operator_username === "string") out.operator_username = d.operator_username;
  return out;
}

/** verifyRecord that answers null instead of throwing. */
export function tryVerifyRecord(nodeId: string, record: SignedRecord | undefined): RecordData | null {
  if (!record) return null;
  try {
    return verifyRecord(nodeId, record);
  } catch {
    return null;
  }
}
