/**
 * Presence at relays (docs/protocol.md#relay step 1), a daemon service: for each relay in `network.relays`,
 * hold a session (pinned: never closed for idleness), send RelayAnnounce every
 * `transport.relay_announce_interval` on it — which also keeps this node's NAT mapping open —
 * and expect RelayReady `waiting`. A failure (relay restarted, connection lost, no answer) drops
 * the registration and retries after 1 s, doubling up to 30 s, so a relay restart is survived
 * without operator action. The relays this node is registered with are advertised as its home
 * relays (Hello `relays`, signed bootstrap record), as `atlas_<id>@host:port`.
 */
import { REGISTER_RETRY_FIRST_MS, RELAY_RETRY_MAX_MS } from "../config/durations.ts";
import type { AtlasNode } from "../net/node.ts";
import type { Session } from "../net/session.ts";
import { isTcpLeg } from "../transport/tcp-leg.ts";
import type { Logger } from "../util/log.ts";
import { sleep, unixNow } from "../util/time.ts";
import { acceptRelayedConnections } from "./accept.ts";
import { relayErrorToAtlas } from "./dial.ts";
import { relayLabel, relaySession, resolveRelay } from "./session.ts";

export interface RelayState {
  relay: string;
  node_id: string | null;
  registered: boolean;
  last_ok: number | null;
  last_error: string | null;
  attempts: number;
  /** How the session with the relay runs: QUIC over UDP, or the TCP leg (docs/protocol.md#the-tcp-leg); null without one. */
  leg: "udp" | "tcp" | null;
}

export class RelayPresence {
  private node: AtlasNode;
  private log: Logger;
  private ctrl: AbortController | null = null;
  private loops: Promise<void>[] = [];
  private states = new Map<string, RelayState & { session: Session | null; label: string | null }>();
  /** Called when the set of registered relays changes (re-register with bootstrap nodes). */
  onChange: (() => void) | null = null;

  constructor(node: AtlasNode, log: Logger) {
    this.node = node;
    this.log = log;
    acceptRelayedConnections(node, { relayOf: (s) => this.labelOf(s) });
  }

  /** The configured relays to announce to (none when `transport.enable_relay` is off). */
  get relays(): string[] {
    const c = this.node.config;
    return c.transport.enable_relay ? [...new Set(c.network.relays.map((r) => r.trim()).filter(Boolean))] : [];
  }

  start(): void {
    if (this.ctrl) return;
    const ctrl = (this.ctrl = new AbortController());
    for (const r of this.relays) {
      this.states.set(r, {
        relay: r,
        node_id: null,
        registered: false,
        last_ok: null,
        last_error: null,
        attempts: 0,
        leg: null,
        session: null,
        label: null,
      });
      this.loops.push(this.loop(r, ctrl.signal));
    }
  }

  async stop(): Promise<void> {
    this.ctrl?.abort();
    this.ctrl = null;
    await Promise.allSettled(this.loops.splice(0));
  }

  status(): RelayState[] {
    return [...this.states.values()].map(({ session, label: _l, ...st }) => ({
      ...st,
      leg: session?.isOpen ? (isTcpLeg(session.conn) ? "tcp" : "udp") : null,
    }));
  }

  /** The label of a relay session this node announces on, or null. */
  private labelOf(s: Session): string | null {
    for (const st of this.states.values()) if (st.session === s && st.registered) return st.label;
    return null;
  }

  private async loop(relay: string, signal: AbortSignal): Promise<void> {
    const st = this.states.get(relay)!;
    const intervalMs = this.node.config.transport.relay_announce_interval * 1000;
    let backoff = REGISTER_RETRY_FIRST_MS;
    while (!signal.aborted) {
      st.attempts++;
      try {
        await this.announceOnce(relay, st, signal);
        backoff = REGISTER_RETRY_FIRST_MS;
        await sleep(intervalMs, signal);
      } catch (e) {
        if (signal.aborted) return;
        const msg = (e as Error).message;
        if (st.registered || st.last_error !== msg) this.log.warn("relay announce failed", { relay, error: msg });
        st.last_error = msg;
        this.setRegistered(st, false);
        await sleep(backoff, signal).catch(() => {});
        backoff = Math.min(backoff * 2, RELAY_RETRY_MAX_MS);
      }
    }
  }

  private async announceOnce(
    relay: string,
    st: RelayState & { session: Session | null; label: string | null },
    signal: AbortSignal,
  ): Promise<void> {
    const ref = await resolveRelay(relay);
    const s = st.session?.isOpen ? st.session : await relaySession(this.node, ref, signal);
    s.pinned = true; // docs/protocol.md#relay: the announce connection lives as long as the registration
    st.session = s;
    st.label = relayLabel(s, ref);
    st.node_id = s.nodeId;
    const res = await s.request(
      { type: "RelayAnnounce", node_id: this.node.nodeId, timestamp: unixNow() },
      this.node.config.transport.request_timeout * 1000,
    );
    if (res.type === "RelayError") throw relayErrorToAtlas(st.label, res.code, res.reason);
    if (res.type !== "RelayReady" || res.status !== "waiting") {
      throw new Error(
        `relay answered RelayAnnounce with ${res.type}${res.type === "RelayReady" ? ` ${res.status}` : ""}`,
      );
    }
    st.last_ok = unixNow();
    st.last_error = null;
    if (!st.registered) this.log.info("registered with relay", { relay: st.label });
    this.setRegistered(st, true);
  }

  private setRegistered(st: RelayState & { label: string | null }, on: boolean): void {
    if (st.registered === on) return;
    st.registered = on;
    const home = [...this.states.values()].filter((x) => x.registered && x.label).map((x) => x.label!);
    this.node.card.relays = home;
    this.onChange?.();
  }
}
