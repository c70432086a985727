/**
 * The daemon's public address (docs/protocol.md#stun): STUN at start and every `stun.interval`, the HelloAck
 * `observed_addr` of two agreeing peers as a second source, else the bind address — and why.
 */
import type { Service } from "../util/service.ts";
import { listenAddrs } from "../transport/listen-addrs.ts";
import type { QuicEndpoint } from "../transport/endpoint.ts";
import { formatAddr, parseAddr } from "../transport/addr.ts";
import { discoverPublicAddress } from "./client.ts";

export type PublicAddressSource = "stun" | "observed" | "bind";

export interface PublicAddressState {
  address: string | null;
  source: PublicAddressSource;
  /** The STUN server that answered (source "stun"). */
  server?: string;
  /** Unix ms of the last STUN check, null before the first one finished. */
  checkedAt: number | null;
  /** Why STUN gave no answer (source "observed"/"bind"). */
  reason?: string;
  /** Peers that reported the address (source "observed"). */
  peers?: number;
}

export interface StunServiceOptions {
  servers: readonly string[];
  /** Total budget of one check (`stun.timeout` s × 1000). */
  timeoutMs: number;
  /** Re-check period (`stun.interval` s × 1000). */
  intervalMs: number;
  log?: {
    info(m: string, f?: Record<string, unknown>): void;
    warn(m: string, f?: Record<string, unknown>): void;
    debug(m: string, f?: Record<string, unknown>): void;
  };
  /** Delay of the first check after start() (the daemon prints its listening line first). */
  startDelayMs?: number;
  /** Called when the public address changes (e.g. re-register with bootstrap nodes). */
  onChange?: (address: string | null) => void;
  /** Told the outcome of every check that asked STUN servers (metrics). */
  onResult?: (ok: boolean) => void;
}

/** Peers whose observed_addr reports we keep (most recent first out). */
const MAX_OBSERVERS = 256;
/** Agreeing peers needed before an observed address is believed. */
const OBSERVED_QUORUM = 2;

export class StunService implements Service {
  private endpoint: QuicEndpoint;
  private o: StunServiceOptions;
  private timer: ReturnType<typeof setInterval> | undefined;
  private first: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;
  private running: Promise<void> | null = null;
  private stun: { address: string; server: string } | null = null;
  private stunError: string | null = null;
  private checkedAt: number | null = null;
  /** node ID → the address it last reported (insertion order = age). */
  private observed = new Map<string, string>();

  constructor(endpoint: QuicEndpoint, o: StunServiceOptions) {
    this.endpoint = endpoint;
    this.o = o;
  }

  /** Non-blocking: the first check runs in the background, never delaying start-up. */
  start(): void {
    this.stopped = false;
    this.first = setTimeout(() => void this.check(), this.o.startDelayMs ?? 0);
    this.first.unref?.();
    if (this.o.intervalMs > 0) {
      this.timer = setInterval(() => void this.check(), this.o.intervalMs);
      this.timer.unref?.();
    }
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.first);
    clearInterval(this.timer);
  }

  /** One check now (coalesced with a running one). */
  check(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.running) return this.running;
    const before = this.publicAddress();
    this.running = (async () => {
      if (this.o.servers.length === 0) {
        this.stun = null;
        this.stunError = null;
      } else {
        try {
          const d = await discoverPublicAddress(this.endpoint, this.o.servers, this.o.timeoutMs);
          this.stun = { address: formatAddr(d.address), server: d.server };
          this.stunError = null;
          this.o.onResult?.(true);
          this.o.log?.[this.stun.address === before ? "debug" : "info"]("STUN answered", {
            server: d.server,
            public_address: this.stun.address,
          });
        } catch (e) {
          this.stun = null;
          this.stunError = (e as Error).message;
          this.o.onResult?.(false);
          this.o.log?.debug("STUN gave no answer", { error: this.stunError }); // `atlas status` says why
        }
      }
      this.checkedAt = Date.now();
    })().finally(() => {
      this.running = null;
      if (!this.stopped && this.publicAddress() !== before) this.o.onChange?.(this.publicAddress());
    });
    return this.running;
  }

  /**
   * A peer's HelloAck `observed_addr`. Believed only when STUN gives no answer and once two
   * different peers report the same address (a single peer could lie).
   */
  noteObserved(addr: string, fromNodeId: string): void {
    const a = parseAddr(addr);
    if (!a) return;
    const before = this.publicAddress();
    this.observed.delete(fromNodeId);
    this.observed.set(fromNodeId, formatAddr(a));
    while (this.observed.size > MAX_OBSERVERS) this.observed.delete(this.observed.keys().next().value!);
    if (!this.stopped && this.publicAddress() !== before) this.o.onChange?.(this.publicAddress());
  }

  /** The most reported observed address with at least two distinct peers, if any. */
  private agreedObserved(): { address: string; peers: number } | null {
    const counts = new Map<string, number>();
    for (const a of this.observed.values()) counts.set(a, (counts.get(a) ?? 0) + 1);
    let best: { address: string; peers: number } | null = null;
    for (const [address, peers] of counts) {
      if (peers >= OBSERVED_QUORUM && (!best || peers > best.peers)) best = { address, peers };
    }
    return best;
  }

  private bindAddress(): string | null {
    return listenAddrs(this.endpoint.local)[0] ?? null;
  }

  state(): PublicAddressState {
    if (this.stun) {
      return { address: this.stun.address, source: "stun", server: this.stun.server, checkedAt: this.checkedAt };
    }
    const reason = this.o.servers.length === 0
      ? "no STUN server configured"
      : this.checkedAt === null
      ? "STUN check pending"
      : `STUN failed: ${this.stunError}`;
    const obs = this.agreedObserved();
    if (obs) return { address: obs.address, source: "observed", peers: obs.peers, checkedAt: this.checkedAt, reason };
    return { address: this.bindAddress(), source: "bind", checkedAt: this.checkedAt, reason };
  }

  publicAddress(): string | null {
    return this.state().address;
  }

  /** For `atlas status`: the address and a human description of where it came from. */
  status(): {
    address: string | null;
    source: string;
    kind: PublicAddressSource;
    server?: string;
    checked_at: number | null;
  } {
    const s = this.state();
    const source = s.source === "stun"
      ? `stun ${s.server}`
      : s.source === "observed"
      ? `observed by ${s.peers} peers (${s.reason})`
      : `bind address (${s.reason})`;
    return {
      address: s.address,
      source,
      kind: s.source,
      ...(s.server ? { server: s.server } : {}),
      checked_at: s.checkedAt === null ? null : Math.floor(s.checkedAt / 1000),
    };
  }
}
