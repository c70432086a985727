/**
 * The bytes each side signs (docs/protocol.md#handshake): "atlas-handshake-v1" ‖ role ‖ signer node_id ‖
 * verifier node_id ‖ challenge. Domain separation means a node key never signs a bare value the
 * peer chose, and the role byte stops a signature made as responder being replayed as initiator.
 */
export const ROLE_INITIATOR = 0x01;
export const ROLE_RESPONDER = 0x02;
const DOMAIN = new TextEncoder().encode("atlas-handshake-v1");
const enc = new TextEncoder();

export function handshakeSignedBytes(
  role: number,
  signer: string,
  verifier: string,
  challenge: Uint8Array,
): Uint8Array {
  const s = enc.encode(signer);
  const v = enc.encode(verifier);
  const out = new Uint8Array(DOMAIN.length + 1 + s.length + v.length + challenge.length);
  let o = 0;
  out.set(DOMAIN, o);
  o += DOMAIN.length;
  out[o++] = role;
  out.set(s, o);
  o += s.length;
  out.set(v, o);
  o += v.length;
  out.set(challenge, o);
  return out;
}
