/**
 * The agent's side of bootstrap and discovery (SPEC §12).
 *
 * - BootstrapRegistration (a daemon Service) registers with every node in `network.bootstrap`
 *   (the daemon has already merged its `--bootstrap` flags into node.config) at start and every
 *   `bootstrap.register_interval`; a failed attempt is retried after 1 s, doubling up to the
 *   interval, so a bootstrap node that restarts (and forgets its registry) has this node back as
 *   soon as it answers again. Each registration carries a freshly signed peer record.
 * - discover() asks every configured bootstrap node, checks the signed records, merges the
 *   answers per node ID and upserts them into `peers` (see absorbPeer for what may overwrite what).
 *
 * Connections to a bootstrap node are short-lived: a session this module dialled is closed once
 * its exchange is done (a bootstrap node serving thousands of agents must not hold a connection
 * to each), while a session something else opened is only borrowed.
 */
import type { Config } from "../config/defaults.ts";
import { AtlasError, isAtlasError } from "../errors.ts";
import { shortNodeId } from "../identity/node-id.ts";
import type { AtlasNode } from "../net/node.ts";
import type { Session } from "../net/session.ts";
import { resolveNodeRef } from "../net/target.ts";
import type { PeerRow, PeerUpdate, Store } from "../store/index.ts";
import { type Logger, silentLogger } from "../util/log.ts";
import { sleep, unixNow } from "../util/time.ts";
import {
  type BootstrapDiscover,
  type BootstrapRegister,
  DISCONNECT_SHUTDOWN,
  type PeerRecord,
  type WireMessage,
} from "../wire/messages.ts";
import { nodeIdFromPublicKey } from "../identity/node-id.ts";
import { makeRecord, type RecordData, tryVerifyRecord } from "./record.ts";
import { MAX_DISCOVER_LIMIT, normalizeOperator } from "./registry.ts";

/** What a daemon service is (the daemon's Service interface, restated to keep this module light). */
interface Service {
  start(): void;
  stop(): void | Promise<void>;
}

type ControlHandler = (args: Record<string, unknown>) => Promise<unknown>;

/** The configured bootstrap nodes plus `extra` (command-line flags), de-duplicated, order kept. */
export function bootstrapTargets(cfg: Config, extra: readonly string[] = []): string[] {
  return [...new Set([...cfg.network.bootstrap, ...extra].map((s) => s.trim()).filter((s) => s !== ""))];
}

/** The error for a node with no bootstrap node to ask (exit 1). */
export function noBootstrapError(): AtlasError {
  return new AtlasError(
    "ERR_CONFIG",
    "no bootstrap node configured: set network.bootstrap in state/config.toml (e.g. `atlas config set network.bootstrap 198.51.100.7:4433`) or pass --bootstrap host:port",
    { exit: 1 },
  );
}

// ---- sessions with bootstrap nodes ----

const borrowed = new WeakMap<Session, { users: number; ours: boolean }>();

/**
 * Run `fn` on a session with the bootstrap node `text`: a live one when there is one (by pinned
 * node ID, else by address), otherwise a new dial that is closed again once no caller uses it.
 */
export async function withBootstrap<T>(node: AtlasNode, text: string, fn: (s: Session) => Promise<T>): Promise<T> {
  const t = await resolveNodeRef(text, "bootstrap node");
  let s = node.liveSessionAt(t);
  let use = s ? borrowed.get(s) : undefined;
  if (!s) {
    s = await node.connectTo(t.addr, { expectedNodeId: t.nodeId });
    use = borrowed.get(s);
    if (!use) borrowed.set(s, use = { users: 0, ours: true });
  }
  if (use) use.users++;
  const session = s;
  try {
    return await fn(session);
  } finally {
    if (use && --use.users === 0) {
      borrowed.delete(session);
      if (use.ours && !session.pinned && session.isOpen) {
        void session.disconnect(DISCONNECT_SHUTDOWN, "bootstrap exchange done", "bootstrap_done");
      }
    }
  }
}

function expectType<K extends WireMessage["type"]>(
  res: WireMessage,
  type: K,
  what: string,
): Extract<WireMessage, { type: K }> {
  if (res.type !== type) {
    throw new AtlasError("ERR_MESSAGE_REJECTED", `bootstrap node answered ${what} with ${res.type}`);
  }
  return res as Extract<WireMessage, { type: K }>;
}

// ---- registration ----

export interface RegistrationState {
  bootstrap: string;
  registered: boolean;
  last_ok: number | null;
  last_error: string | null;
  attempts: number;
}

export interface RegistrationOptions {
  log?: Logger;
  /** The node's public address when known (STUN); advertised instead of its first listen address. */
  publicAddress?: () => string | null | undefined;
}

/** The BootstrapRegister this node sends now: advertised address, public address, a fresh signed record. */
export function registrationMessage(node: AtlasNode, publicAddress?: string | null): BootstrapRegister | null {
  const pub = publicAddress || undefined;
  const address = pub ?? node.card.listenAddrs[0];
  if (!address) return null;
  const record = makeRecord(node.identity, {
    address,
    public_address: pub,
    relays: node.card.relays,
    name: node.card.name,
    skills: node.card.skills,
    operator_username: node.card.operator?.username,
  });
  const m: BootstrapRegister = {
    type: "BootstrapRegister",
    node_id: node.nodeId,
    address,
    timestamp: unixNow(),
    record,
  };
  if (pub) m.public_address = pub;
  return m;
}

/**
 * Register once with one bootstrap node; throws on any failure. The message (and its signed
 * record) is built once the session is up, so it says what this node knows at sending time.
 */
export async function registerWith(
  node: AtlasNode,
  bootstrap: string,
  publicAddress: () => string | null | undefined = () => undefined,
): Promise<void> {
  await withBootstrap(node, bootstrap, async (s) => {
    const msg = registrationMessage(node, publicAddress());
    if (!msg) throw new AtlasError("ERR_CONFIG", "this node has no address to advertise (it does not listen)");
    const ack = expectType(
      await s.request(msg, node.config.transport.request_timeout * 1000),
      "MessageAck",
      "BootstrapRegister",
    );
    if (ack.status !== "registered") {
      throw new AtlasError(
        "ERR_MESSAGE_REJECTED",
        `bootstrap node answered BootstrapRegister with status '${ack.status}'`,
      );
    }
  });
}

/**
 * The daemon's registration service: one loop per bootstrap node. Success → next registration
 * after `bootstrap.register_interval`; failure → retry after 1 s, doubling up to that interval.
 */
export class BootstrapRegistration implements Service {
  private node: AtlasNode;
  private log: Logger;
  private publicAddress: () => string | null | undefined;
  private ctrl: AbortController | null = null;
  private loops: Promise<void>[] = [];
  private states = new Map<string, RegistrationState>();

  constructor(node: AtlasNode, o: RegistrationOptions = {}) {
    this.node = node;
    this.log = o.log ?? node.log ?? silentLogger;
    this.publicAddress = o.publicAddress ?? (() => undefined);
  }

  start(): void {
    if (this.ctrl) return;
    const ctrl = (this.ctrl = new AbortController());
    for (const b of bootstrapTargets(this.node.config)) {
      this.states.set(b, { bootstrap: b, registered: false, last_ok: null, last_error: null, attempts: 0 });
      this.loops.push(this.loop(b, ctrl.signal));
    }
  }

  async stop(): Promise<void> {
    this.ctrl?.abort();
    this.ctrl = null;
    await Promise.allSettled(this.loops.splice(0));
  }

  /** Per bootstrap node: registered?, last success, last error (for `atlas status`). */
  status(): RegistrationState[] {
    return [...this.states.values()].map((s) => ({ ...s }));
  }

  /** Register with every bootstrap node now (e.g. after the public address changed). */
  async registerAll(): Promise<void> {
    await Promise.allSettled([...this.states.keys()].map((b) => this.attempt(b)));
  }

  private inflight = new Map<string, Promise<boolean>>();
  private rerun = new Set<string>();

  /**
   * One registration at a time per bootstrap node: a request while one is in flight (the address
   * or the relays changed) runs once more after it, so the last registration sent is the newest.
   */
  private attempt(b: string): Promise<boolean> {
    const cur = this.inflight.get(b);
    if (cur) {
      this.rerun.add(b);
      return cur;
    }
    const run = (async () => {
      let ok: boolean;
      do {
        this.rerun.delete(b);
        ok = await this.attemptOnce(b);
      } while (this.rerun.has(b));
      return ok;
    })().finally(() => this.inflight.delete(b));
    this.inflight.set(b, run);
    return run;
  }

  private async attemptOnce(b: string): Promise<boolean> {
    const st = this.states.get(b)!;
    st.attempts++;
    try {
      await registerWith(this.node, b, this.publicAddress);
      if (!st.registered) this.log.info("registered with bootstrap node", { bootstrap: b });
      else this.log.debug("registration renewed", { bootstrap: b });
      st.registered = true;
      st.last_ok = unixNow();
      st.last_error = null;
      return true;
    } catch (e) {
      const msg = (e as Error).message;
      if (st.registered || st.last_error === null) {
        this.log.warn("bootstrap registration failed", { bootstrap: b, error: msg });
      } else this.log.debug("bootstrap registration failed", { bootstrap: b, error: msg });
      st.registered = false;
      st.last_error = msg;
      return false;
    }
  }

  private async loop(b: string, signal: AbortSignal): Promise<void> {
    const intervalMs = this.node.config.bootstrap.register_interval * 1000;
    let backoff = Math.min(1000, intervalMs);
    while (!signal.aborted) {
      const ok = await this.attempt(b);
      if (signal.aborted) return;
      if (ok) {
        backoff = Math.min(1000, intervalMs);
        await sleep(intervalMs, signal);
      } else {
        await sleep(backoff, signal);
        backoff = Math.min(backoff * 2, intervalMs);
      }
    }
  }
}

// ---- discovery ----

export interface DiscoverQuery {
  skill?: string;
  /** Operator username, `@` optional. */
  operator?: string;
  limit?: number;
  /** Bootstrap nodes to ask besides network.bootstrap (`--bootstrap`). */
  bootstrap?: string[];
}

export interface DiscoveredPeer {
  node_id: string;
  name: string;
  address: string;
  public_address: string | null;
  relays: string[];
  skills: string[];
  /** The username the bootstrap node verified (SPEC §13); shown, not stored as this node's verdict. */
  operator_username: string | null;
  last_seen: number;
  /** `verified`: a signed record checked out and its content is shown; `none`: bootstrap's word only. */
  record: "verified" | "none";
  record_seq: number | null;
  /** The bootstrap nodes that returned it. */
  bootstraps: string[];
}

export interface BootstrapAnswer {
  bootstrap: string;
  ok: boolean;
  peers?: number;
  /** PeerRecords refused: key not matching the node ID, or a signed record that does not verify. */
  rejected?: number;
  error?: { code: string; message: string };
}

export interface DiscoverReport {
  peers: DiscoveredPeer[];
  bootstraps: BootstrapAnswer[];
}

/** A PeerRecord as received, with its checked signed record (null when it had none). */
export interface CheckedPeer {
  peer: PeerRecord;
  record: RecordData | null;
}

/**
 * Check one PeerRecord: its public key must hash to its node ID, and a signed record, when
 * present, must verify (else the whole entry is refused: whoever altered the record may have
 * altered the rest). Returns null for a refused entry.
 */
export function checkPeerRecord(p: PeerRecord): CheckedPeer | null {
  try {
    if (nodeIdFromPublicKey(p.public_key) !== p.node_id) return null;
  } catch {
    return null;
  }
  if (!p.record) return { peer: p, record: null };
  const rec = tryVerifyRecord(p.node_id, p.record);
  if (!rec) return null;
  if (rec.public_key.length !== p.public_key.length || rec.public_key.some((b, i) => b !== p.public_key[i])) {
    return null;
  }
  return { peer: p, record: rec };
}

/**
 * Upsert one discovered peer into `peers` (SPEC §8, §12). Trust is never set here: a new row
 * starts `unknown`, a known one keeps its level.
 * - A verified signed record newer than any this node has seen (peers.record_seq) is the node's
 *   own latest word: it sets address, public address, relays, name and skills, and record_seq.
 * - Anything else — no record, or a replayed/repeated one — only fills fields this node does not
 *   know yet; it never overwrites an address (or a name) learnt in a handshake.
 * - The bootstrap's operator username is not stored: peers.operator_username holds only
 *   usernames this node verified itself.
 */
export async function absorbPeer(store: Store, c: CheckedPeer, now: number = unixNow()): Promise<void> {
  const p = c.peer;
  const row: PeerRow | null = await store.peers.get(p.node_id);
  const rec = c.record;
  const fresh = rec !== null && (row?.record_seq === null || row?.record_seq === undefined || rec.seq > row.record_seq);
  const u: PeerUpdate = { node_id: p.node_id, public_key: p.public_key, last_seen: Math.min(p.last_seen, now) };
  const src = rec ??
    { address: p.address, public_address: p.public_address, relays: p.relays, name: p.name, skills: p.skills };
  if (fresh) {
    u.address = src.address;
    u.public_address = src.public_address;
    u.relays = src.relays;
    u.name = src.name;
    u.skills = src.skills;
    u.record_seq = rec.seq;
  } else {
    if (!row?.address) u.address = src.address;
    if (!row?.public_address && !row?.address) u.public_address = src.public_address;
    if (!row?.relays.length) u.relays = src.relays;
    if (!row?.name) u.name = src.name;
    if (!row?.skills.length) u.skills = src.skills;
  }
  await store.peers.upsert(u, now);
}

function discoveredView(c: CheckedPeer, from: string): DiscoveredPeer {
  const p = c.peer;
  const src = c.record ?? p;
  return {
    node_id: p.node_id,
    name: src.name,
    address: src.address,
    public_address: src.public_address ?? null,
    relays: [...src.relays],
    skills: [...src.skills],
    operator_username: p.operator_username ?? null,
    last_seen: p.last_seen,
    record: c.record ? "verified" : "none",
    record_seq: c.record?.seq ?? null,
    bootstraps: [from],
  };
}

/** Of two answers about one node: the higher verified seq wins, then the later last_seen. */
function better(a: CheckedPeer, b: CheckedPeer): boolean {
  const sa = a.record?.seq ?? -1;
  const sb = b.record?.seq ?? -1;
  return sa !== sb ? sa > sb : a.peer.last_seen > b.peer.last_seen;
}

/**
 * `net discover` (SPEC §12): BootstrapDiscover to every configured bootstrap node (and
 * `q.bootstrap`), in parallel; answers merged per node ID, upserted into `peers`, returned newest
 * first. Fails only when no bootstrap node answered.
 */
export async function discover(node: AtlasNode, q: DiscoverQuery = {}): Promise<DiscoverReport> {
  const targets = bootstrapTargets(node.config, q.bootstrap);
  if (targets.length === 0) throw noBootstrapError();
  const req: BootstrapDiscover = { type: "BootstrapDiscover" };
  const skill = q.skill?.trim().toLowerCase();
  if (skill) req.skill = skill;
  const op = q.operator !== undefined ? normalizeOperator(q.operator) : undefined;
  if (op) req.operator = op;
  if (q.limit !== undefined) req.limit = Math.max(1, Math.min(MAX_DISCOVER_LIMIT, Math.trunc(q.limit)));
  const timeoutMs = node.config.transport.request_timeout * 1000;

  const merged = new Map<string, { best: CheckedPeer; from: Set<string>; firstFrom: string }>();
  const answers = await Promise.all(
    targets.map(async (b): Promise<BootstrapAnswer> => {
      try {
        const res = await withBootstrap(
          node,
          b,
          async (s) => expectType(await s.request(req, timeoutMs), "BootstrapPeers", "BootstrapDiscover"),
        );
        let rejected = 0;
        for (const p of res.peers) {
          if (p.node_id === node.nodeId) continue;
          const c = checkPeerRecord(p);
          if (!c) {
            rejected++;
            node.log.info("refused a discovered peer record", { bootstrap: b, peer: shortNodeId(p.node_id) });
            continue;
          }
          const m = merged.get(p.node_id);
          if (!m) merged.set(p.node_id, { best: c, from: new Set([b]), firstFrom: b });
          else {
            m.from.add(b);
            if (better(c, m.best)) m.best = c;
          }
        }
        const a: BootstrapAnswer = { bootstrap: b, ok: true, peers: res.peers.length };
        if (rejected > 0) a.rejected = rejected;
        return a;
      } catch (e) {
        const err = isAtlasError(e) ? e : new AtlasError("ERR_INTERNAL", (e as Error).message);
        node.log.info("bootstrap node did not answer", { bootstrap: b, error: err.message });
        return { bootstrap: b, ok: false, error: { code: err.code, message: err.message } };
      }
    }),
  );
  if (!answers.some((a) => a.ok)) {
    const first = answers[0]!.error!;
    const detail = answers.map((a) => `${a.bootstrap}: ${a.error!.message}`).join("; ");
    throw new AtlasError(first.code as AtlasError["code"], `no bootstrap node answered (${detail})`);
  }
  const now = unixNow();
  const peers: DiscoveredPeer[] = [];
  for (const m of merged.values()) {
    await absorbPeer(node.store, m.best, now);
    peers.push({ ...discoveredView(m.best, m.firstFrom), bootstraps: [...m.from] });
  }
  peers.sort((a, b) => b.last_seen - a.last_seen);
  return { peers, bootstraps: answers };
}

/** Control-socket arguments of `net.discover` → a DiscoverQuery (anything malformed is dropped). */
export function discoverArgs(a: Record<string, unknown>): DiscoverQuery {
  const q: DiscoverQuery = {};
  if (typeof a.skill === "string") q.skill = a.skill;
  if (typeof a.operator === "string") q.operator = a.operator;
  if (typeof a.limit === "number" && Number.isFinite(a.limit)) q.limit = a.limit;
  if (Array.isArray(a.bootstrap)) q.bootstrap = a.bootstrap.filter((x): x is string => typeof x === "string");
  return q;
}

/** The daemon's `net.discover` control op. */
export function discoverHandler(node: AtlasNode): ControlHandler {
  return (a) => discover(node, discoverArgs(a));
}

/**
 * Everything the agent daemon needs for SPEC §12, in one call from its `extend`: the
 * registration service and the `net.discover` op. Returns the service (for `atlas status`).
 */
export function addBootstrapClient(
  node: AtlasNode,
  handlers: Map<string, ControlHandler>,
  services: Service[],
  o: RegistrationOptions = {},
): BootstrapRegistration {
  const reg = new BootstrapRegistration(node, o);
  services.push(reg);
  handlers.set("net.discover", discoverHandler(node));
  handlers.set("bootstrap.registrations", () => Promise.resolve(reg.status()));
  return reg;
}
