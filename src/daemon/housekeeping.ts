/**
 * The daemon's periodic clean-ups (every role: agent daemon, relay, bootstrap): jobs run once at
 * start and then hourly. A job that fails is logged and tried again at the next round.
 */
import type { Config } from "../config/defaults.ts";
import { HOUSEKEEPING_INTERVAL_MS } from "../config/durations.ts";
import type { Store } from "../store/index.ts";
import type { Logger } from "../util/log.ts";
import { unixNow } from "../util/time.ts";
import type { Service } from "../util/service.ts";

type Job = { what: string; run: () => Promise<unknown> };

export class Housekeeping implements Service {
  readonly #jobs: Job[] = [];
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(private readonly log: Logger) {}

  /** `what` names the job in a failure's log line, e.g. "inbox pruning". */
  add(what: string, run: () => Promise<unknown>): void {
    this.#jobs.push({ what, run });
  }

  start(): void {
    this.#runAll();
    this.#timer = setInterval(() => this.#runAll(), HOUSEKEEPING_INTERVAL_MS);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  #runAll(): void {
    for (const j of this.#jobs) {
      void j.run().catch((e) => this.log.warn(`${j.what} failed`, { error: (e as Error).message }));
    }
  }
}

/** Delete `unknown` peers never used for anything after `peers.prune_unknown_after_days`. */
export async function prunePeers(store: Store, cfg: Config, log: Logger, now = unixNow()): Promise<number> {
  const n = await store.peers.pruneUnused(now - cfg.peers.prune_unknown_after_days * 86400, now);
  if (n > 0) log.info("pruned unused unknown peers", { count: n, days: cfg.peers.prune_unknown_after_days });
  return n;
}
