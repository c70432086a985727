/**
 * Farcaster hub HTTP API client (docs/protocol.md#operator-binding step 2, §15 `[farcaster]`): which address owns a fid
 * (custody) and which username a fid has are Farcaster state that a signature cannot prove, so a
 * peer asks a hub. Speaks the public HTTP API v1 served by Snapchain nodes (port 3381) and by
 * legacy Hubble hubs (port 2281):
 *
 * - custody: `GET /v1/onChainEventsByFid?fid=N&event_type=EVENT_TYPE_ID_REGISTER` lists the fid's
 *   IdRegistry events; the `to` of the latest Register/Transfer event is the current custody
 *   address. (`/v1/onChainIdRegistryEventByAddress` answers the reverse question, "which fid did
 *   this address receive", and is not documented to forget an address that transferred its fid
 *   away, so it is not used: the by-fid history is authoritative.)
 * - username: `GET /v1/userDataByFid?fid=N&user_data_type=USER_DATA_TYPE_USERNAME`, value in
 *   `data.userDataBody.value`; a "not found" error means the fid has no username.
 *
 * Answers (including "no such fid" / "no username") are cached in memory for `cacheTtlSecs`;
 * failures are not cached. Concurrent questions about the same fid share one request.
 * Web APIs only (fetch, AbortSignal, URL), so it runs under Node and Deno. No viem here.
 */
import { HUB_REQUEST_TIMEOUT_MS } from "../config/durations.ts";
import { AtlasError } from "../errors.ts";
import type { HubClient } from "./verify.ts";
import { checksumAddress, isAddress } from "./eip191.ts";

/**
 * Default hub: the Snapchain node Farcaster itself runs for public reads. It needs no API key
 * (Neynar's hosted hubs do), serves the standard HTTP API on Snapchain's default port 3381, and is
 * the network's source of truth since Hubble hubs were retired; the community's free Hubble hubs
 * (e.g. Pinata's) are no longer a dependable default. Override with `farcaster.hub_url`.
 */
export const DEFAULT_HUB_URL = "https://snap.farcaster.xyz:3381";

export interface HttpHubClientOptions {
  /** How long answers are kept (config `farcaster.cache_ttl`), seconds. Default 86400. */
  cacheTtlSecs?: number;
  /** Per-request deadline, ms. Default HUB_REQUEST_TIMEOUT_MS. */
  timeoutMs?: number;
  /** Replacement fetch (tests, proxies). Default: the global fetch. */
  fetch?: typeof fetch;
  /** Clock in ms since the epoch (tests). Default Date.now. */
  now?: () => number;
}

export interface HubStatus {
  /** null until the first request; then whether the latest request got an answer. */
  reachable: boolean | null;
  lastError?: string;
  /** Unix seconds of the latest request. */
  lastCheckedAt?: number;
}

/** The hub URL a config selects: `farcaster.hub_url`, or DEFAULT_HUB_URL when empty. */
export function hubUrlFor(hubUrl: string | undefined): string {
  return hubUrl && hubUrl.trim() !== "" ? hubUrl.trim() : DEFAULT_HUB_URL;
}

/** The hub said "not found" (a definite answer, unlike an error). */
class NotFound {}

interface CacheEntry<T> {
  value: T;
  expiresAt: number; // ms
}

const MAX_BODY_CHARS = 4 << 20; // a fid's id-register history is a few KiB; refuse absurd bodies
const MAX_PAGES = 20;
const MAX_CACHE_ENTRIES = 10_000;

export class HttpHubClient implements HubClient {
  readonly baseUrl: string;
  private readonly ttlMs: number;
  private readonly timeoutMs: number;
  private readonly fetchFn: typeof fetch;
  private readonly now: () => number;
  private readonly custodyCache = new Map<number, CacheEntry<string | null>>();
  private readonly usernameCache = new Map<number, CacheEntry<string | null>>();
  private readonly inflight = new Map<string, Promise<string | null>>();
  private state: HubStatus = { reachable: null };

  constructor(baseUrl: string, opts: HttpHubClientOptions = {}) {
    let u: URL;
    try {
      u = new URL(baseUrl);
    } catch {
      throw new AtlasError("ERR_CONFIG", `farcaster.hub_url: not a URL: ${JSON.stringify(baseUrl)}`);
    }
    if (u.protocol !== "http:" && u.protocol !== "https:") {
      throw new AtlasError(
        "ERR_CONFIG",
        `farcaster.hub_url: must be an http:// or https:// URL, got ${JSON.stringify(baseUrl)}`,
      );
    }
    this.baseUrl = u.href.replace(/\/+$/, "");
    const ttl = opts.cacheTtlSecs ?? 86400;
    this.ttlMs = Number.isFinite(ttl) && ttl > 0 ? ttl * 1000 : 0;
    this.timeoutMs = opts.timeoutMs ?? HUB_REQUEST_TIMEOUT_MS;
    this.fetchFn = opts.fetch ?? ((input, init) => fetch(input, init));
    this.now = opts.now ?? Date.now;
  }

  status(): HubStatus {
    return { ...this.state };
  }

  /** Forget every cached answer. */
  clearCache(): void {
    this.custodyCache.clear();
    this.usernameCache.clear();
  }

  async custodyOwnsFid(fid: number, address: string): Promise<boolean> {
    if (!isAddress(address)) return false;
    const owner = await this.custodyOf(fid);
    return owner !== null && owner.toLowerCase() === address.toLowerCase();
  }

  /** The fid's current custody address (EIP-55), or null when the hub knows no such fid. */
  custodyOf(fid: number): Promise<string | null> {
    assertFid(fid);
    return this.cached(this.custodyCache, `custody:${fid}`, fid, () => this.fetchCustody(fid));
  }

  /** The fid's current username (USER_DATA_TYPE_USERNAME), or null when it has none. */
  username(fid: number): Promise<string | null> {
    assertFid(fid);
    return this.cached(this.usernameCache, `username:${fid}`, fid, () => this.fetchUsername(fid));
  }

  private cached(
    cache: Map<number, CacheEntry<string | null>>,
    key: string,
    fid: number,
    load: () => Promise<string | null>,
  ): Promise<string | null> {
    const hit = cache.get(fid);
    if (hit && hit.expiresAt > this.now()) return Promise.resolve(hit.value);
    if (hit) cache.delete(fid);
    const running = this.inflight.get(key);
    if (running) return running;
    const p = load()
      .then((value) => {
        if (this.ttlMs > 0) {
          if (cache.size >= MAX_CACHE_ENTRIES) cache.delete(cache.keys().next().value!);
          cache.set(fid, { value, expiresAt: this.now() + this.ttlMs });
        }
        return value;
      })
      .finally(() => this.inflight.delete(key));
    this.inflight.set(key, p);
    return p;
  }

  private async fetchCustody(fid: number): Promise<string | null> {
    let best: { block: number; log: number; to: string } | null = null;
    let pageToken = "";
    for (let page = 0; page < MAX_PAGES; page++) {
      const q = `fid=${fid}&event_type=EVENT_TYPE_ID_REGISTER${
        pageToken ? `&pageToken=${encodeURIComponent(pageToken)}` : ""
      }`;
      const body = await this.get("/v1/onChainEventsByFid", q);
      if (body instanceof NotFound) return best?.to ?? null;
      const events = (body as { events?: unknown }).events;
      if (!Array.isArray(events)) throw this.bad("/v1/onChainEventsByFid", "no events array");
      for (const ev of events) {
        const e = ev as { fid?: unknown; blockNumber?: unknown; logIndex?: unknown; idRegisterEventBody?: unknown };
        if (e.fid !== undefined && Number(e.fid) !== fid) continue;
        const b = e.idRegisterEventBody as { to?: unknown; eventType?: unknown } | undefined;
        if (!b || isChangeRecovery(b.eventType) || !isAddress(b.to)) continue;
        const block = Number(e.blockNumber ?? 0);
        const log = Number(e.logIndex ?? 0);
        if (!best || block > best.block || (block === best.block && log > best.log)) {
          best = { block, log, to: checksumAddress(b.to) };
        }
      }
      const next = (body as { nextPageToken?: unknown }).nextPageToken;
      if (typeof next !== "string" || next === "" || events.length === 0) break;
      pageToken = next;
    }
    return best?.to ?? null;
  }

  private async fetchUsername(fid: number): Promise<string | null> {
    const path = "/v1/userDataByFid";
    const body = await this.get(path, `fid=${fid}&user_data_type=USER_DATA_TYPE_USERNAME`);
    if (body instanceof NotFound) return null;
    // With user_data_type the hub answers one message; some hubs wrap it in {messages: [...]}.
    const msgs = Array.isArray((body as { messages?: unknown }).messages)
      ? (body as { messages: unknown[] }).messages
      : [body];
    for (const m of msgs) {
      const d = (m as { data?: { fid?: unknown; userDataBody?: { type?: unknown; value?: unknown } } }).data;
      const ud = d?.userDataBody;
      if (!ud || (ud.type !== undefined && ud.type !== "USER_DATA_TYPE_USERNAME" && ud.type !== 6)) continue;
      if (d.fid !== undefined && Number(d.fid) !== fid) continue;
      if (typeof ud.value !== "string") throw this.bad(path, "username is not a string");
      const name = ud.value.trim();
      if (name === "") return null;
      // deno-lint-ignore no-control-regex -- matching control characters is the point
      if (name.length > 256 || /[\u0000-\u001f\u007f]/.test(name)) throw this.bad(path, "implausible username");
      return name;
    }
    return null;
  }

  private bad(path: string, why: string): AtlasError {
    const err = new AtlasError("ERR_UNREACHABLE", `unexpected answer from ${this.baseUrl}${path}: ${why}`);
    this.state = { ...this.state, reachable: false, lastError: err.message };
    return err;
  }

  /** GET base+path?query → parsed JSON object, or NotFound for the hub's "not found" error. */
  private async get(path: string, query: string): Promise<object | NotFound> {
    const url = `${this.baseUrl}${path}?${query}`;
    const checkedAt = Math.floor(this.now() / 1000);
    const fail = (msg: string, cause?: unknown): AtlasError => {
      this.state = { reachable: false, lastError: msg, lastCheckedAt: checkedAt };
      return new AtlasError("ERR_UNREACHABLE", msg, { cause });
    };
    let res: Response;
    let text: string;
    try {
      res = await this.fetchFn(url, {
        headers: { accept: "application/json" },
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      text = await res.text();
    } catch (e) {
      const name = (e as { name?: string }).name;
      if (name === "TimeoutError" || name === "AbortError") {
        throw fail(`no answer from ${this.baseUrl} within ${this.timeoutMs} ms`, e);
      }
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      const why = cause?.code ?? cause?.message ?? (e as Error).message;
      throw fail(`cannot reach ${this.baseUrl}: ${why}`, e);
    }
    if (text.length > MAX_BODY_CHARS) throw fail(`${url}: answer larger than ${MAX_BODY_CHARS} characters`);
    let json: unknown;
    try {
      json = text === "" ? undefined : JSON.parse(text);
    } catch {
      json = undefined;
    }
    const isObject = typeof json === "object" && json !== null && !Array.isArray(json);
    if (!res.ok) {
      // Hubble answers {"errCode":"not_found",…}; Snapchain {"error":…,"errorDetail":"…NotFound…"}.
      // A bare 404 page (wrong URL, not a hub) is an error, not an answer.
      if (res.status >= 400 && res.status < 500 && res.status !== 429 && isObject && /not[_ ]?found/i.test(text)) {
        this.state = { reachable: true, lastCheckedAt: checkedAt };
        return new NotFound();
      }
      const snippet = text.replace(/\s+/g, " ").trim().slice(0, 120);
      throw fail(`HTTP ${res.status} from ${this.baseUrl}${path}${snippet ? `: ${snippet}` : ""}`);
    }
    if (!isObject) throw fail(`${this.baseUrl}${path} did not answer a JSON object`);
    this.state = { reachable: true, lastCheckedAt: checkedAt };
    return json as object;
  }
}

function assertFid(fid: number): void {
  if (!Number.isSafeInteger(fid) || fid <= 0) {
    throw new AtlasError("ERR_USAGE", `fid must be a positive integer, got ${fid}`);
  }
}

/** IdRegistry "change recovery address" events do not move custody. Hubble writes the enum as
 * "ID_REGISTER_EVENT_TYPE_CHANGE_RECOVERY", Snapchain as "ChangeRecovery"; 3 numerically. */
function isChangeRecovery(t: unknown): boolean {
  if (t === 3) return true;
  return typeof t === "string" && /change_?recovery/i.test(t);
}
