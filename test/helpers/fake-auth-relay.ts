/**
 * A local fake of the Farcaster auth relay's channel API, as @farcaster/auth-client calls it
 * (relay base URL + "/v1/…", JSON bodies, `Authorization: Bearer <channelToken>`):
 *
 *   POST /v1/channel {siweUri, domain, nonce?, notBefore?, expirationTime?, requestId?, …}
 *     → 201 {channelToken, url, nonce}
 *   GET  /v1/channel/status   (Authorization: Bearer <channelToken>)
 *     → 202 {state: "pending", nonce, url, signatureParams, metadata, acceptAuthAddress}
 *     → 200 {state: "completed", …, message, signature, authMethod, fid, username, custody, …}
 *     → 401 {error: "Unauthorized"} for a missing or unknown token
 *
 * After `pendingPolls` pending answers the "operator's Farcaster app" approves: it builds the
 * Sign In With Farcaster message from the channel's parameters (Request ID = the channel's
 * requestId, so the requesting node's ID; its nonce, domain, siweUri, notBefore, expirationTime)
 * and signs it with the fixed test custody key of test/helpers/farcaster.ts.
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { makeBinding, TEST_PRIVATE_KEY } from "./farcaster.ts";

export interface FakeAuthRelayOptions {
  /** Status polls answered "pending" before the approval (default 1; Infinity: never approved). */
  pendingPolls?: number;
  fid?: number;
  username?: string;
  /** Sign for this Request ID instead of the channel's (a relay answering for another node). */
  requestIdOverride?: string;
  /** Sign with this nonce instead of the channel's (a replayed approval). */
  nonceOverride?: string;
  /** Key that signs (default the test custody key). */
  signerKey?: Uint8Array;
  /** `custody` in the completed answer (default the signer's address). */
  custodyAddress?: string;
  /** Answer POST /v1/channel with this HTTP error status (and {error}) instead of a channel. */
  createStatus?: number;
  /** Answer status polls with this HTTP error status (and {error}). */
  statusStatus?: number;
}

export interface ChannelRecord {
  token: string;
  /** The POST /v1/channel body as received. */
  request: Record<string, unknown>;
  polls: number;
  /** Authorization headers seen on status polls. */
  authHeaders: string[];
}

export interface FakeAuthRelay {
  /** Base URL to pass as --auth-relay. */
  url: string;
  channels: ChannelRecord[];
  /** "METHOD path" of every request, in order. */
  log: string[];
  close(): Promise<void>;
}

const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);

export async function startFakeAuthRelay(o: FakeAuthRelayOptions = {}): Promise<FakeAuthRelay> {
  const pendingPolls = o.pendingPolls ?? 1;
  const fid = o.fid ?? 1234;
  const username = o.username ?? "alice";
  const channels = new Map<string, ChannelRecord>();
  const log: string[] = [];
  const sockets = new Set<Socket>();

  const json = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json; charset=utf-8" });
    res.end(JSON.stringify(body));
  };
  const readBody = (req: IncomingMessage) =>
    new Promise<string>((resolve, reject) => {
      let s = "";
      req.setEncoding("utf8");
      req.on("data", (d) => (s += d));
      req.on("end", () => resolve(s));
      req.on("error", reject);
    });

  let base = "";
  const server = createServer(async (req, res) => {
    const u = new URL(req.url ?? "/", "http://relay");
    log.push(`${req.method} ${u.pathname}`);
    try {
      if (req.method === "POST" && u.pathname === "/v1/channel") {
        if (o.createStatus) return json(res, o.createStatus, { error: "channel creation disabled in fake relay" });
        let body: Record<string, unknown>;
        try {
          body = JSON.parse(await readBody(req)) as Record<string, unknown>;
        } catch {
          return json(res, 400, { error: "Invalid JSON body" });
        }
        if (!str(body.siweUri) || !str(body.domain)) {
          return json(res, 400, { error: "body must have required property 'siweUri' and 'domain'" });
        }
        if (body.nonce !== undefined && !/^[a-zA-Z0-9]{8,}$/.test(String(body.nonce))) {
          return json(res, 400, { error: 'body/nonce must match pattern "^[a-zA-Z0-9]{8,}$"' });
        }
        for (const k of ["notBefore", "expirationTime"]) {
          if (body[k] !== undefined && Number.isNaN(Date.parse(String(body[k])))) {
            return json(res, 400, { error: `body/${k} must match format "date-time"` });
          }
        }
        const token = randomUUID();
        const nonce = str(body.nonce) ?? randomUUID().replace(/-/g, "");
        body.nonce = nonce;
        channels.set(token, { token, request: body, polls: 0, authHeaders: [] });
        return json(res, 201, { channelToken: token, url: approvalUrl(token, body), nonce });
      }
      if (req.method === "GET" && u.pathname === "/v1/channel/status") {
        const auth = req.headers.authorization ?? "";
        const token = /^Bearer (.+)$/.exec(auth)?.[1];
        const ch = token ? channels.get(token) : undefined;
        if (!ch) return json(res, 401, { error: "Unauthorized" });
        ch.authHeaders.push(auth);
        ch.polls++;
        if (o.statusStatus) return json(res, o.statusStatus, { error: "status disabled in fake relay" });
        const r = ch.request;
        const common = {
          nonce: r.nonce,
          url: approvalUrl(ch.token, r),
          signatureParams: {
            siweUri: r.siweUri,
            domain: r.domain,
            nonce: r.nonce,
            ...(r.notBefore !== undefined ? { notBefore: r.notBefore } : {}),
            ...(r.expirationTime !== undefined ? { expirationTime: r.expirationTime } : {}),
            ...(r.requestId !== undefined ? { requestId: r.requestId } : {}),
          },
          metadata: { ip: req.socket.remoteAddress ?? "127.0.0.1", userAgent: req.headers["user-agent"] ?? "" },
          acceptAuthAddress: r.acceptAuthAddress !== false,
        };
        if (ch.polls <= pendingPolls) return json(res, 202, { state: "pending", ...common });
        const op = makeBinding({
          nodeId: o.requestIdOverride ?? String(r.requestId),
          fid,
          username,
          issuedAt: new Date(Math.floor(Date.now() / 1000) * 1000),
          expirationTime: new Date(String(r.expirationTime)),
          ...(r.notBefore !== undefined ? { notBefore: new Date(String(r.notBefore)) } : {}),
          nonce: o.nonceOverride ?? String(r.nonce),
          domain: String(r.domain),
          uri: String(r.siweUri),
          signerKey: o.signerKey ?? TEST_PRIVATE_KEY,
        });
        return json(res, 200, {
          state: "completed",
          ...common,
          message: op.message,
          signature: op.signature,
          authMethod: "custody",
          fid,
          username,
          bio: "test operator",
          displayName: "Alice",
          pfpUrl: "https://example.invalid/alice.png",
          verifications: [],
          custody: o.custodyAddress ?? op.custody_address,
        });
      }
      return json(res, 404, { error: "Not Found" });
    } catch (e) {
      return json(res, 500, { error: (e as Error).message });
    }
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  function approvalUrl(token: string, r: Record<string, unknown>): string {
    const q = new URLSearchParams({
      channelToken: token,
      nonce: String(r.nonce),
      siweUri: String(r.siweUri),
      domain: String(r.domain),
    });
    return `${base}/~/siwf?${q}`;
  }

  return {
    url: base,
    get channels() {
      return [...channels.values()];
    },
    log,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
