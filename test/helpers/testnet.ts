/**
 * An in-process testnet, in the spirit of hyperdht's `createTestnet()`: real nodes with real QUIC
 * on 127.0.0.1 and real libSQL files, made with one call each and torn down together.
 *
 *   const net = createTestnet();
 *   after(() => net.destroy());
 *   const a = await net.node({ name: "alpha" });
 *   const relay = await net.relay();
 *
 * Processes (the CLI, daemons) are in test/helpers/cli.ts; this kit is for tests that drive the
 * library directly.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Config, defaultConfig } from "../../src/config/defaults.ts";
import { type Identity, identityFromSeed } from "../../src/identity/identity.ts";
import { generateSeed } from "../../src/identity/keys.ts";
import type { Profile } from "../../src/identity/profile.ts";
import { AtlasNode } from "../../src/net/node.ts";
import { RelayPresence } from "../../src/relay/presence.ts";
import { RelayServer } from "../../src/relay/server.ts";
import { openStore, type Store } from "../../src/store/index.ts";
import { formatAddr } from "../../src/transport/addr.ts";
import { type Logger, silentLogger } from "../../src/util/log.ts";
import { waitFor } from "./wait.ts";

export interface NodeOptions {
  name?: string;
  identity?: Identity;
  /** A seed for the identity (ignored when `identity` is given). */
  seed?: Uint8Array;
  /** Reuse a store (e.g. to restart a node on the same database); the testnet closes it. */
  store?: Store;
  listen?: boolean;
  /** Bind address (default: the config's network.host, 127.0.0.1 unless configured). */
  host?: string;
  port?: number;
  skills?: string[];
  /** The whole card (name, bio, skills, operator binding); overrides `name` and `skills`. */
  profile?: Profile;
  /** Where the node logs (default: silent). */
  log?: Logger;
  /** Adjust the node's config; the base is the defaults with no STUN servers, on 127.0.0.1. */
  configure?: (c: Config) => void;
  /** Peers' requests wait for `openRequests()` (as in a daemon that is still starting). */
  holdRequests?: boolean;
  /** false: a node that does not advertise pipeline/1 (as one from before it). */
  pipeline?: boolean;
}

export interface Testnet {
  /** A node listening on 127.0.0.1 with a fresh identity and store. */
  node(o?: NodeOptions): Promise<AtlasNode>;
  /** A relay node running a RelayServer. */
  relay(o?: NodeOptions): Promise<{ node: AtlasNode; server: RelayServer; addr: string }>;
  /** A node registered with `relayAddr` (its presence running); resolves once registered. */
  relayed(relayAddr: string, o?: NodeOptions): Promise<{ node: AtlasNode; presence: RelayPresence }>;
  /** A fresh libSQL store in its own directory, closed by destroy(). */
  store(): Promise<Store>;
  /** A temporary directory removed by destroy(). */
  dir(): Promise<string>;
  /** Runs `fn` at destroy(), before the nodes close (services, sockets). */
  defer(fn: () => unknown): void;
  /** Stops every service, closes every node and store, removes every directory. */
  destroy(): Promise<void>;
}

/** Answer every Message with a MessageAck, storing nothing (a peer that accepts what it is sent). */
export function answerMessages(n: AtlasNode): void {
  n.handle(
    "Message",
    (_s, req) =>
      Promise.resolve(req.type === "Message" ? { type: "MessageAck", msg_id: req.id, status: "received" } : null),
  );
}

/** "ip:port" of a node's listener. */
export const addrOf = (n: AtlasNode): string => formatAddr(n.endpoint.local);

/** "atlas_<id>@ip:port": a target pinned to this node's address. */
export const pinnedTarget = (n: AtlasNode): string => `${n.identity.nodeId}@${addrOf(n)}`;

export interface TestnetOptions {
  /** Applied to every node's config before the node's own `configure`. */
  configure?: (c: Config) => void;
  /** Prefix of the temporary directories. */
  prefix?: string;
}

export function createTestnet(net: TestnetOptions = {}): Testnet {
  const prefix = net.prefix ?? "atlas-testnet-";
  const dirs: string[] = [];
  const nodes: AtlasNode[] = [];
  const stores = new Set<Store>();
  const deferred: (() => unknown)[] = [];

  const dir = async () => {
    const d = await mkdtemp(join(tmpdir(), prefix));
    dirs.push(d);
    return d;
  };
  const store = async () => {
    const s = await openStore(join(await dir(), "peers.db"));
    stores.add(s);
    return s;
  };
  const node = async (o: NodeOptions = {}) => {
    const config = defaultConfig();
    config.stun.servers = [];
    config.network.host = "127.0.0.1";
    config.network.port = 0;
    net.configure?.(config);
    o.configure?.(config);
    const s = o.store ?? (await store());
    stores.add(s);
    const identity = o.identity ?? identityFromSeed(o.seed ?? generateSeed());
    const n = await AtlasNode.start({
      config,
      identity,
      profile: o.profile ?? { name: o.name ?? "n-" + identity.nodeId.slice(6, 12), bio: "", skills: o.skills ?? [] },
      store: s,
      listen: o.listen ?? true,
      host: o.host ?? config.network.host,
      port: o.port ?? 0,
      log: o.log,
      holdRequests: o.holdRequests,
      pipeline: o.pipeline,
    });
    nodes.push(n);
    return n;
  };
  const relay = async (o: NodeOptions = {}) => {
    const n = await node({ name: "relay", ...o });
    const server = new RelayServer(n);
    server.start();
    deferred.push(() => server.stop());
    return { node: n, server, addr: addrOf(n) };
  };
  const relayed = async (relayAddr: string, o: NodeOptions = {}) => {
    const n = await node({
      name: "target",
      ...o,
      configure: (c) => {
        c.network.relays = [relayAddr];
        c.transport.relay_announce_interval = 1;
        o.configure?.(c);
      },
    });
    const presence = new RelayPresence(n, silentLogger);
    presence.start();
    deferred.push(() => presence.stop());
    await waitFor("registration with the relay", () => presence.status()[0]?.registered === true);
    return { node: n, presence };
  };
  const destroy = async () => {
    for (const fn of deferred.splice(0).reverse()) await fn();
    await Promise.all(nodes.splice(0).map((n) => n.close()));
    // A test may have closed a store itself already (to restart a node on it).
    await Promise.all([...stores].map((s) => Promise.resolve().then(() => s.close()).catch(() => {})));
    stores.clear();
    await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
  };
  return { node, relay, relayed, store, dir, defer: (fn) => deferred.push(fn), destroy };
}
