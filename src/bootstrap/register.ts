/**
 * Registration with bootstrap nodes (docs/protocol.md#bootstrap-and-discovery). BootstrapRegistration, a daemon Service, registers
 * with every node in `network.bootstrap` (the daemon has already merged its `--bootstrap` flags
 * into node.config) at start and every `bootstrap.register_interval`; a failed attempt is retried
 * after 1 s, doubling up to the interval, so a bootstrap node that restarts (and forgets its
 * registry) has this node back as soon as it answers again. Each registration carries a freshly
 * signed peer record.
 */
import { REGISTER_RETRY_FIRST_MS } from "../config/durations.ts";
import { AtlasError } from "../errors.ts";
import type { AtlasNode } from "../net/node.ts";
import { type Logger, silentLogger } from "../util/log.ts";
import type { Service } from "../util/service.ts";
import { sleep, unixNow } from "../util/time.ts";
import type { BootstrapRegister } from "../wire/messages.ts";
import { expectType, withBootstrap } from "./borrow-session.ts";
import { makeRecord } from "./record.ts";
import { bootstrapTargets } from "./targets.ts";

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
    let backoff = Math.min(REGISTER_RETRY_FIRST_MS, intervalMs);
    while (!signal.aborted) {
      const ok = await this.attempt(b);
      if (signal.aborted) return;
      if (ok) {
        backoff = Math.min(REGISTER_RETRY_FIRST_MS, intervalMs);
        await sleep(intervalMs, signal);
      } else {
        await sleep(backoff, signal);
        backoff = Math.min(backoff * 2, intervalMs);
      }
    }
  }
}
