/**
 * Throwaway in-process identities for the phases (sybils, scale peers, diallers): each an AtlasNode
 * with its own endpoint on `host` (another 127.0.0.x stands for another machine), all sharing one
 * store in a temporary directory (they keep nothing worth keeping apart). Created with bounded
 * concurrency and a deadline, so a slow machine shortens the crowd instead of the phase hanging.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Config, defaultConfig } from "../src/config/defaults.ts";
import { identityFromSeed } from "../src/identity/identity.ts";
import { generateSeed } from "../src/identity/keys.ts";
import { AtlasNode } from "../src/net/node.ts";
import { openStore, type Store } from "../src/store/index.ts";

export interface CrowdOptions {
  host?: string;
  name?: string;
  listen?: boolean;
  tune?: (c: Config) => void;
}

export class Crowd {
  readonly nodes: AtlasNode[] = [];
  private constructor(private dir: string, private store: Store) {}

  static async open(): Promise<Crowd> {
    const dir = await mkdtemp(join(tmpdir(), "atlas-crowd-"));
    return new Crowd(dir, await openStore(join(dir, "crowd.db")));
  }

  /** One more node; STUN off, the given host, `tune` applied to a default config. */
  async add(o: CrowdOptions = {}): Promise<AtlasNode> {
    const config = defaultConfig();
    config.stun.servers = [];
    config.network.host = o.host ?? "127.0.0.1";
    o.tune?.(config);
    const n = await AtlasNode.start({
      config,
      identity: identityFromSeed(generateSeed()),
      profile: { name: o.name ?? "crowd", bio: "", skills: [] },
      store: this.store,
      listen: o.listen ?? false,
      host: config.network.host,
      port: 0,
    });
    this.nodes.push(n);
    return n;
  }

  /** Close every node (their sessions end with a Disconnect), then the store and the directory. */
  async close(): Promise<void> {
    const all = this.nodes.splice(0);
    await pool(all, 32, (n) => n.close().catch(() => {}));
    await this.store.close().catch(() => {});
    await rm(this.dir, { recursive: true, force: true });
  }
}

/**
 * Run `fn` over `items`, at most `limit` at once, starting none after `deadline` (ms since the
 * epoch). Returns each item's result or error, in order; skipped items are left `undefined`.
 */
export async function pool<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, i: number) => Promise<R>,
  deadline = Infinity,
): Promise<({ ok: true; value: R } | { ok: false; error: unknown } | undefined)[]> {
  const out: ({ ok: true; value: R } | { ok: false; error: unknown } | undefined)[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length && Date.now() < deadline) {
      const i = next++;
      try {
        out[i] = { ok: true, value: await fn(items[i]!, i) };
      } catch (error) {
        out[i] = { ok: false, error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
