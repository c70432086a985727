/**
 * Who may hold how many of a relay's pipe slots at once (docs/protocol.md#relay step 3, 1.2). A pipe — pairing
 * or forwarding — is charged from the moment its slot is reserved until it closes, to: the relay's
 * capacity, its source node, its source address, its target, and its source address's share of
 * that target. Identities cost nothing to make, so the node-ID limit alone does not stop one host
 * with a hundred of them; the address limits do, and the share keeps any one address from making
 * a target busy for everybody else.
 */
import { isIP } from "node:net";
import type { Config } from "../config/defaults.ts";
import { unmapHost } from "../transport/addr.ts";
import { RelayErrorCode } from "../wire/messages.ts";

/** The parties a pipe is charged to. */
export interface PipeOwner {
  /** The dialler's node ID. */
  source: string;
  /** The dialler's connection's remote IP, as `addressKey` groups it. */
  address: string;
  target: string;
}

export interface Refusal {
  code: (typeof RelayErrorCode)[keyof typeof RelayErrorCode];
  reason: string;
}

/** Counts per key; a key is dropped at zero, so the maps only ever hold live pipes' parties. */
class Tally {
  private m = new Map<string, number>();
  get(k: string): number {
    return this.m.get(k) ?? 0;
  }
  add(k: string, d: 1 | -1): void {
    const n = this.get(k) + d;
    if (n <= 0) this.m.delete(k);
    else this.m.set(k, n);
  }
}

export class PipeSlots {
  private cfg: Config["transport"];
  private total = 0;
  private bySource = new Tally();
  private byAddress = new Tally();
  private byTarget = new Tally();
  private byTargetAddress = new Tally();

  constructor(cfg: Config["transport"]) {
    this.cfg = cfg;
  }

  get used(): number {
    return this.total;
  }

  /** Pipes to `target` one address may hold: half the target's slots, rounded up. */
  addressShare(): number {
    return Math.ceil(this.cfg.relay_pipes_per_target / 2);
  }

  /** Why one more pipe for `o` does not fit, or null when it does. Checked widest limit first. */
  refusal(o: PipeOwner): Refusal | null {
    const c = this.cfg;
    if (this.total >= c.relay_capacity) {
      return { code: RelayErrorCode.AT_CAPACITY, reason: `relay at capacity (${c.relay_capacity} pipes)` };
    }
    if (this.bySource.get(o.source) >= c.relay_pipes_per_source) {
      return { code: RelayErrorCode.PER_SOURCE_LIMIT, reason: `at most ${c.relay_pipes_per_source} pipes per source` };
    }
    if (this.byAddress.get(o.address) >= c.relay_pairings_per_ip) {
      return {
        code: RelayErrorCode.PER_SOURCE_LIMIT,
        reason: `at most ${c.relay_pairings_per_ip} pipes per source address`,
      };
    }
    if (this.byTarget.get(o.target) >= c.relay_pipes_per_target) {
      return { code: RelayErrorCode.TARGET_BUSY, reason: `target has ${c.relay_pipes_per_target} pipes already` };
    }
    if (this.byTargetAddress.get(`${o.target} ${o.address}`) >= this.addressShare()) {
      return {
        code: RelayErrorCode.PER_SOURCE_LIMIT,
        reason: `at most ${this.addressShare()} of a target's pipes per source address`,
      };
    }
    return null;
  }

  /** Charge one pipe to `o` (after `refusal` said it fits); returns its release, safe to call twice. */
  reserve(o: PipeOwner): () => void {
    const tallies: [Tally, string][] = [
      [this.bySource, o.source],
      [this.byAddress, o.address],
      [this.byTarget, o.target],
      [this.byTargetAddress, `${o.target} ${o.address}`],
    ];
    this.total++;
    for (const [t, k] of tallies) t.add(k, 1);
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      this.total--;
      for (const [t, k] of tallies) t.add(k, -1);
    };
  }
}

/**
 * The address a source is counted under: an IPv4 address as is, an IPv6 one by its /64 (a single
 * host or home network usually holds a whole /64, so its addresses are as cheap as identities).
 */
export function addressKey(host: string): string {
  const h = unmapHost(host.split("%")[0]!);
  if (isIP(h) !== 6) return h;
  return `${expandV6(h).slice(0, 4).join(":")}::/64`;
}

/** The eight groups of an IPv6 address, as lowercase hex without leading zeros. */
function expandV6(h: string): string[] {
  const groups = (s: string) => (s ? s.split(":").flatMap(dottedToGroups) : []);
  const [head, tail] = h.includes("::") ? h.split("::") : [h, ""];
  const a = groups(head!);
  const b = groups(tail!);
  return [...a, ...Array<string>(Math.max(0, 8 - a.length - b.length)).fill("0"), ...b]
    .map((g) => parseInt(g, 16).toString(16));
}

/** A trailing dotted IPv4 (`::1.2.3.4`) is two groups. */
function dottedToGroups(g: string): string[] {
  if (!g.includes(".")) return [g];
  const [w, x, y, z] = g.split(".").map(Number) as [number, number, number, number];
  return [((w << 8) | x).toString(16), ((y << 8) | z).toString(16)];
}
