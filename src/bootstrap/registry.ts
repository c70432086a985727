/**
 * The bootstrap node's registry (docs/protocol.md#bootstrap-and-discovery): an in-memory directory of live agents, keyed by node
 * ID, at most `bootstrap.capacity` records. A record is stale once its last registration is older
 * than `bootstrap.stale_after` seconds; stale records are evicted when the registry is full and
 * before a discover is answered. A full registry with nothing stale refuses new nodes (Error 4001)
 * but always accepts a re-registration of a node it holds.
 *
 * What a record says comes from two places: the registration itself (node_id, which must be the
 * session's authenticated ID, the advertised address and public address, the signed record) and
 * the registering node's handshake (public key, name, skills, home relays, and the operator
 * username only when this node verified the binding). The source address the bootstrap node
 * observed is kept too and stands in for public_address when the node gave none.
 *
 * Memory only, by design: after a restart agents re-register within `bootstrap.register_interval`.
 */
import { AtlasError } from "../errors.ts";
import type { BootstrapDiscover, BootstrapRegister, PeerRecord } from "../wire/messages.ts";
import type { PeerCard } from "../handshake/handshake.ts";
import { verifyRecord } from "./record.ts";

/** Largest number of peers one BootstrapPeers answer carries (docs/protocol.md#bootstrap-and-discovery). */
export const MAX_DISCOVER_LIMIT = 500;

export interface RegistryEntry extends PeerRecord {
  /** The source address the bootstrap node saw the registration come from. */
  observed_address: string;
  /** Unix seconds of the first registration since this node started. */
  registered_at: number;
}

/** Who is registering, as the session proved and declared it. */
export interface Registrant {
  nodeId: string;
  card: Pick<PeerCard, "publicKey" | "name" | "skills" | "relays" | "verdict">;
  remoteAddress: string;
}

export interface RegistryOptions {
  capacity: number;
  staleAfter: number;
  now?: () => number;
}

/** `alice`, `@alice`, ` @Alice ` → `alice`. */
export function normalizeOperator(s: string): string {
  return s.trim().replace(/^@/, "").toLowerCase();
}

export class Registry {
  private entries = new Map<string, RegistryEntry>();
  /** `seq` of each entry's signed record. */
  private seqs = new Map<string, number>();
  readonly capacity: number;
  readonly staleAfter: number;
  private now: () => number;

  constructor(o: RegistryOptions) {
    this.capacity = o.capacity;
    this.staleAfter = o.staleAfter;
    this.now = o.now ?? (() => Math.floor(Date.now() / 1000));
  }

  get size(): number {
    return this.entries.size;
  }

  get(nodeId: string): RegistryEntry | undefined {
    return this.entries.get(nodeId);
  }

  private isStale(e: RegistryEntry, now: number): boolean {
    return now - e.last_seen > this.staleAfter;
  }

  /** Drop every stale record; returns how many went. */
  evictStale(): number {
    const now = this.now();
    let n = 0;
    for (const [id, e] of this.entries) {
      if (this.isStale(e, now)) {
        this.entries.delete(id);
        this.seqs.delete(id);
        n++;
      }
    }
    return n;
  }

  /**
   * Add or refresh a registration. Throws AtlasError ERR_MESSAGE_REJECTED (2003) when node_id is
   * not the registrant's authenticated ID or its signed record does not check out, and
   * ERR_RATE_LIMITED (4001) when the registry is full of live records.
   */
  register(
    who: Registrant,
    req: Pick<BootstrapRegister, "node_id" | "address" | "public_address" | "record">,
  ): RegistryEntry {
    if (req.node_id !== who.nodeId) {
      throw new AtlasError(
        "ERR_MESSAGE_REJECTED",
        "BootstrapRegister.node_id is not the ID this session authenticated",
      );
    }
    // A record that does not verify would be passed on to every discoverer and refused there:
    // refuse it here, where the sender learns about it.
    const data = req.record ? verifyRecord(req.node_id, req.record) : null;
    const now = this.now();
    const old = this.entries.get(req.node_id);
    // Registrations of one node can overtake each other (a re-registration after a STUN answer
    // racing the periodic one): a signed record older than the stored one only renews liveness.
    const oldSeq = this.seqs.get(req.node_id);
    if (old && data && oldSeq !== undefined && data.seq < oldSeq) {
      old.last_seen = now;
      return old;
    }
    if (!old && this.entries.size >= this.capacity) {
      this.evictStale();
      if (this.entries.size >= this.capacity) {
        throw new AtlasError("ERR_RATE_LIMITED", `bootstrap registry is full (${this.capacity} live records)`);
      }
    }
    const v = who.card.verdict;
    const entry: RegistryEntry = {
      node_id: req.node_id,
      public_key: who.card.publicKey,
      address: req.address,
      // The signed record says where the node is registered now; the session's Hello may predate it.
      relays: data ? [...data.relays] : [...who.card.relays],
      name: who.card.name,
      skills: [...who.card.skills],
      last_seen: now,
      observed_address: who.remoteAddress,
      registered_at: old?.registered_at ?? now,
    };
    const pub = req.public_address ?? (who.remoteAddress !== req.address ? who.remoteAddress : undefined);
    if (pub) entry.public_address = pub;
    if (v?.status === "verified") entry.operator_username = v.username;
    if (req.record) entry.record = req.record;
    if (data) this.seqs.set(req.node_id, data.seq);
    else this.seqs.delete(req.node_id);
    // Re-insert so iteration order stays oldest-registration-first.
    this.entries.delete(req.node_id);
    this.entries.set(req.node_id, entry);
    return entry;
  }

  /**
   * Live records matching every given filter (skill: one of its skills; operator: its verified
   * username, `@` optional; both case-insensitive), newest last_seen first, at most `limit`
   * (capped at 500). `exclude` leaves out the asker itself.
   */
  discover(q: Pick<BootstrapDiscover, "skill" | "operator" | "limit">, exclude?: string): PeerRecord[] {
    this.evictStale();
    const skill = q.skill?.trim().toLowerCase() || undefined;
    const op = q.operator !== undefined ? normalizeOperator(q.operator) || undefined : undefined;
    const limit = Math.max(1, Math.min(MAX_DISCOVER_LIMIT, q.limit ?? MAX_DISCOVER_LIMIT));
    const out: RegistryEntry[] = [];
    for (const e of this.entries.values()) {
      if (e.node_id === exclude) continue;
      if (skill && !e.skills.some((s) => s.toLowerCase() === skill)) continue;
      if (op && e.operator_username?.toLowerCase() !== op) continue;
      out.push(e);
    }
    // Entries iterate oldest registration first: reverse, then a stable sort, so that within one
    // second the latest registration still comes first.
    out.reverse().sort((a, b) => b.last_seen - a.last_seen);
    return out.slice(0, limit).map(toPeerRecord);
  }
}

/** The wire form of an entry (BootstrapPeers.peers[]). */
export function toPeerRecord(e: RegistryEntry): PeerRecord {
  const r: PeerRecord = {
    node_id: e.node_id,
    public_key: e.public_key,
    address: e.address,
    relays: e.relays,
    name: e.name,
    skills: e.skills,
    last_seen: e.last_seen,
  };
  if (e.public_address) r.public_address = e.public_address;
  if (e.operator_username) r.operator_username = e.operator_username;
  if (e.record) r.record = e.record;
  return r;
}
