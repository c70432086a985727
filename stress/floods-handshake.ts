/**
 * Handshake floods for the floods phase (docs/protocol.md#handshake limits): connections from one address beyond
 * `security.handshakes_per_ip_per_minute`, and silent connections from several addresses beyond
 * `security.handshake_limit`. The refused are refused silently (no answer to their Initial after
 * the Retry), the admitted silent ones are closed with 1003 at the handshake timeout, and a new
 * honest handshake succeeds once they are gone.
 */
import { type Identity, identityFromSeed } from "../src/identity/identity.ts";
import { generateSeed } from "../src/identity/keys.ts";
import { ProtocolCode } from "../src/errors.ts";
import type { QuicConnection } from "../src/transport/connection.ts";
import { within } from "../src/util/time.ts";
import { AdversarialInitiator } from "../test/helpers/handshake-peer.ts";
import { count, expect, type PhaseRow } from "./harness.ts";
import type { Victim } from "./victim.ts";

/** A refused connection gets no answer past the Retry: given up after this long. */
const CONNECT_MS = 1500;
/** How long a newcomer is given while the handshake slots are full (they free up at the timeout). */
const NEWCOMER_MS = 500;

export interface Limits {
  perIpPerMinute: number;
  handshakeLimit: number;
  handshakeTimeoutS: number;
}

/** QUIC connect: "admitted" when TLS completes, else "refused (no answer)" (and closed). */
async function tryConnect(
  a: AdversarialInitiator,
  v: Victim,
  ms = CONNECT_MS,
): Promise<{ conn: QuicConnection; admitted: boolean }> {
  const conn = a.endpoint.connect(v.addr);
  const admitted = (await within(conn.established.then(() => true, () => false), ms)) ?? false;
  if (!admitted) conn.close(0, "given up");
  return { conn, admitted };
}

/** `attempts` connections at once from `host`, a fresh address: at most the per-address budget get in. */
export async function perAddressFlood(row: PhaseRow, v: Victim, host: string, attempts: number, l: Limits) {
  const a = await AdversarialInitiator.create(identityFromSeed(generateSeed()), host);
  try {
    const results = await Promise.all(Array.from({ length: attempts }, () => tryConnect(a, v)));
    const admitted = results.filter((r) => r.admitted).length;
    for (const r of results) r.conn.close(0, "done");
    row.attempts += attempts;
    count(row, "per-address flood: admitted", admitted);
    count(row, "per-address flood: refused silently", attempts - admitted);
    expect(
      row,
      admitted <= l.perIpPerMinute,
      `≤ ${l.perIpPerMinute} of ${attempts} admitted from ${host} (${admitted})`,
    );
    expect(row, admitted > 0, `the address's first connections are admitted (${admitted})`);
  } finally {
    await a.close();
  }
}

/**
 * Silent connections (QUIC only, no control stream) from `hosts`, `perHost` each: at most
 * `handshake_limit` are held at once; a newcomer is refused while they are; each held one is
 * closed with 1003 at the handshake timeout; then a newcomer's handshake succeeds.
 */
export async function pendingFlood(
  row: PhaseRow,
  v: Victim,
  hosts: string[],
  perHost: number,
  newcomer: string,
  l: Limits,
) {
  const attackers = await Promise.all(
    hosts.map((h) => AdversarialInitiator.create(identityFromSeed(generateSeed()), h)),
  );
  const me = identityFromSeed(generateSeed());
  const late = await AdversarialInitiator.create(me, newcomer);
  try {
    const tries = await Promise.all(attackers.flatMap((a) => Array.from({ length: perHost }, () => tryConnect(a, v))));
    const held = tries.filter((t) => t.admitted);
    row.attempts += tries.length;
    count(row, "pending flood: held", held.length);
    count(row, "pending flood: refused at handshake_limit", tries.length - held.length);
    expect(row, held.length <= l.handshakeLimit, `≤ ${l.handshakeLimit} handshakes pending at once (${held.length})`);
    // While the slots are full a newcomer is refused too (its Initial is dropped; it would get in
    // on a retransmission once they free up): the handshake limit is a shared resource.
    if (held.length >= l.handshakeLimit) {
      const during = await tryConnect(late, v, NEWCOMER_MS);
      during.conn.close(0, "done");
      count(row, `pending flood: a newcomer while full: ${during.admitted ? "admitted" : "refused"}`);
    }
    const closes = await Promise.all(held.map((t) => within(t.conn.closed, l.handshakeTimeoutS * 1000 + 3000)));
    const timedOut = closes.filter((c) => c?.code === ProtocolCode.ERR_HANDSHAKE_TIMEOUT).length;
    count(row, `pending flood: closed ${ProtocolCode.ERR_HANDSHAKE_TIMEOUT} at the handshake timeout`, timedOut);
    expect(row, timedOut === held.length, `every held connection closed with 1003 (${timedOut} of ${held.length})`);
    const after = await honestHandshake(late, v, me);
    count(row, `pending flood: a newcomer after: ${after ? "admitted" : "refused"}`);
    expect(row, after, "a newcomer's handshake succeeds once the silent connections are gone");
    for (const t of tries) t.conn.close(0, "done");
  } finally {
    await Promise.all([...attackers, late].map((a) => a.close()));
  }
}

async function honestHandshake(a: AdversarialInitiator, v: Victim, me: Identity): Promise<boolean> {
  try {
    const c = await a.connect(v.addr);
    const { verifyAck } = await c.completeHandshake(me);
    c.close();
    return verifyAck?.type === "VerifyAck" && verifyAck.status === "ok";
  } catch {
    return false;
  }
}
