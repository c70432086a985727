import type { NodeEnv } from "../config/env.ts";
import type { ConfigOverrides } from "../config/load.ts";
import type { AtlasNode } from "../net/node.ts";
import type { MetricsSink } from "../util/metrics.ts";

/**
 * Load identity, profile, config and store from `env`'s home, and start a node: what the daemon
 * runs, what a one-shot CLI command uses, and what a program embedding Atlas calls. Everything
 * heavy is imported here, lazily, so `--help`/`--version` never load QUIC or libSQL. The caller
 * closes the node and then `node.store`.
 */
export async function startNode(
  env: NodeEnv,
  o: {
    listen: boolean;
    host?: string;
    port?: number;
    overrides?: ConfigOverrides;
    metrics?: MetricsSink;
    holdRequests?: boolean;
  },
): Promise<AtlasNode> {
  const { loadIdentity } = await import("../identity/identity.ts");
  const { loadProfile } = await import("../identity/profile.ts");
  const identity = await loadIdentity(env.paths);
  const profile = await loadProfile(env.paths);
  const config = await env.config(o.overrides);
  const { openStore } = await import("../store/index.ts");
  const store = await openStore(env.paths.dbFile);
  const { AtlasNode } = await import("../net/node.ts");
  try {
    return await AtlasNode.start({
      config,
      identity,
      profile,
      store,
      listen: o.listen,
      host: o.host,
      port: o.port,
      log: env.log,
      metrics: o.metrics,
      holdRequests: o.holdRequests,
    });
  } catch (e) {
    await store.close();
    throw e;
  }
}
