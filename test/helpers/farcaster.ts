/**
 * Farcaster test fixtures: a fixed secp256k1 custody key, operator bindings signed with it, and a
 * local fake of the hub HTTP API subset HttpHubClient uses. Nothing here touches the internet.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { bytesToHex, hexToBytes } from "@noble/hashes/utils.js";
import type { OperatorInfo } from "../../src/wire/messages.ts";
import { addressFromPublicKey, personalMessageHash } from "../../src/operator/eip191.ts";
import { buildBindingMessage } from "../../src/operator/siwe.ts";

/** Hardhat / Anvil account #0: a publicly known TEST key. Never use it for anything real. */
export const TEST_PRIVATE_KEY = hexToBytes("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80");
export const TEST_ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
/** Hardhat / Anvil account #1: "another key". */
export const OTHER_PRIVATE_KEY = hexToBytes("59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d");
export const OTHER_ADDRESS = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

export function addressOf(privateKey: Uint8Array): string {
  return addressFromPublicKey(secp256k1.getPublicKey(privateKey, false));
}

/** EIP-191 personal_sign, as a wallet does it: 0x ‖ r ‖ s ‖ v (v = 27/28). Deterministic (RFC 6979). */
export function personalSign(message: string, privateKey: Uint8Array = TEST_PRIVATE_KEY): string {
  const rec = secp256k1.sign(personalMessageHash(message), privateKey, { prehash: false, format: "recovered" });
  // noble's "recovered" layout is recovery ‖ r ‖ s.
  return "0x" + bytesToHex(rec.subarray(1)) + (27 + rec[0]!).toString(16);
}

export interface BindingOptions {
  nodeId: string;
  fid: number;
  username?: string;
  issuedAt?: Date;
  expirationTime?: Date;
  notBefore?: Date;
  nonce?: string;
  domain?: string;
  uri?: string;
  statement?: string;
  /** Key that signs (default TEST_PRIVATE_KEY). */
  signerKey?: Uint8Array;
  /** Custody address claimed in OperatorInfo (default: the signer's address). */
  custodyAddress?: string;
  /** Address written into the message (default: custodyAddress). */
  messageAddress?: string;
  /** Fid named in the message's resources (default: fid). */
  messageFid?: number;
  /** Applied to the message after signing (tampering). */
  tamper?: (message: string) => string;
  /** Replace the message entirely (signed as given, before `tamper`). */
  message?: string;
}

export const DAY_MS = 86_400_000;

/** A SIWF binding of `nodeId` to `fid`, signed by the test custody key (unless overridden). */
export function makeBinding(o: BindingOptions): OperatorInfo {
  const key = o.signerKey ?? TEST_PRIVATE_KEY;
  const custody = o.custodyAddress ?? addressOf(key);
  const issuedAt = o.issuedAt ?? new Date("2025-01-01T00:00:00.000Z");
  const message = o.message ??
    buildBindingMessage({
      domain: o.domain ?? "atlas.example",
      uri: o.uri ?? "https://atlas.example/bind",
      address: o.messageAddress ?? custody,
      nodeId: o.nodeId,
      fid: o.messageFid ?? o.fid,
      nonce: o.nonce ?? "atlasTestNonce01",
      issuedAt,
      expirationTime: o.expirationTime ?? new Date(issuedAt.getTime() + 365 * DAY_MS),
      ...(o.notBefore ? { notBefore: o.notBefore } : {}),
      ...(o.statement !== undefined ? { statement: o.statement } : {}),
    });
  const signature = personalSign(message, key);
  return {
    fid: o.fid,
    username: o.username ?? "alice",
    custody_address: custody,
    message: o.tamper ? o.tamper(message) : message,
    signature,
  };
}

export interface FakeHubOptions {
  /** fid → custody address, or the successive custody addresses (register, then transfers). */
  owners: Map<number, string | string[]>;
  usernames: Map<number, string>;
  /** When true every connection is reset without an answer. */
  down?: boolean;
}

export interface FakeHub {
  url: string;
  /** Number of HTTP requests received so far (including ones answered "down"). */
  readonly requests: number;
  /** Request paths with query, in order. */
  readonly log: string[];
  /** Toggle at run time: "reset" drops connections, "503" answers Service Unavailable, "hang" never answers. */
  down: boolean | "reset" | "503" | "hang";
  close(): Promise<void>;
}

const RECOVERY_PROXY = "0x00000000fcd5a8e45785c8a4b9a718c9348e4f18";

function idRegisterEvents(fid: number, owners: string[]): unknown[] {
  const events: unknown[] = [];
  let block = 108_874_508;
  owners.forEach((to, i) => {
    events.push({
      type: "EVENT_TYPE_ID_REGISTER",
      chainId: 10,
      blockNumber: block,
      blockHash: "0x" + "ab".repeat(32),
      blockTimestamp: 1_693_347_793 + i,
      transactionHash: "0x" + "cd".repeat(32),
      logIndex: 7,
      fid,
      idRegisterEventBody: {
        to: to.toLowerCase(),
        eventType: i === 0 ? "ID_REGISTER_EVENT_TYPE_REGISTER" : "ID_REGISTER_EVENT_TYPE_TRANSFER",
        from: i === 0 ? "0x" : owners[i - 1]!.toLowerCase(),
        recoveryAddress: RECOVERY_PROXY,
      },
      txIndex: 0,
    });
    block += 1000;
  });
  // A later recovery-address change, which must not be mistaken for a custody change.
  events.push({
    type: "EVENT_TYPE_ID_REGISTER",
    chainId: 10,
    blockNumber: block,
    blockHash: "0x" + "ef".repeat(32),
    blockTimestamp: 1_693_400_000,
    transactionHash: "0x" + "12".repeat(32),
    logIndex: 1,
    fid,
    idRegisterEventBody: {
      to: RECOVERY_PROXY,
      eventType: "ID_REGISTER_EVENT_TYPE_CHANGE_RECOVERY",
      from: "0x",
      recoveryAddress: RECOVERY_PROXY,
    },
    txIndex: 0,
  });
  return events;
}

/** A local node:http server speaking the hub HTTP API subset Atlas uses (Hubble's JSON shapes). */
export async function startFakeHub(o: FakeHubOptions): Promise<FakeHub> {
  let requests = 0;
  const log: string[] = [];
  const sockets = new Set<import("node:net").Socket>();
  const state = { down: (o.down ? "reset" : false) as FakeHub["down"] };

  const json = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  };
  const notFound = (res: ServerResponse, what: string) =>
    json(res, 400, {
      errCode: "not_found",
      presentable: false,
      name: "HubError",
      code: 3,
      details: `${what} not found`,
      metadata: { errcode: ["not_found"] },
    });

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    requests++;
    log.push(req.url ?? "");
    const down = state.down === true ? "reset" : state.down;
    if (down === "reset") {
      req.socket.destroy();
      return;
    }
    if (down === "hang") return; // never answer
    if (down === "503") {
      res.writeHead(503, { "content-type": "text/plain" });
      res.end("Service Unavailable");
      return;
    }
    const u = new URL(req.url ?? "/", "http://hub");
    const fid = Number(u.searchParams.get("fid"));
    if (req.method === "GET" && u.pathname === "/v1/onChainEventsByFid") {
      if (u.searchParams.get("event_type") !== "EVENT_TYPE_ID_REGISTER") {
        return json(res, 400, {
          errCode: "bad_request.validation_failure",
          details: "unsupported event_type in fake hub",
        });
      }
      const owner = o.owners.get(fid);
      const list = owner === undefined ? [] : Array.isArray(owner) ? owner : [owner];
      return json(res, 200, { events: list.length ? idRegisterEvents(fid, list) : [] });
    }
    if (req.method === "GET" && u.pathname === "/v1/userDataByFid") {
      if (u.searchParams.get("user_data_type") !== "USER_DATA_TYPE_USERNAME") {
        return json(res, 400, {
          errCode: "bad_request.validation_failure",
          details: "unsupported user_data_type in fake hub",
        });
      }
      const name = o.usernames.get(fid);
      if (name === undefined) return notFound(res, "userDataAdd");
      return json(res, 200, {
        data: {
          type: "MESSAGE_TYPE_USER_DATA_ADD",
          fid,
          timestamp: 83_433_831,
          network: "FARCASTER_NETWORK_MAINNET",
          userDataBody: { type: "USER_DATA_TYPE_USERNAME", value: name },
        },
        hash: "0x" + "00".repeat(20),
        hashScheme: "HASH_SCHEME_BLAKE3",
        signature: "AAAA",
        signatureScheme: "SIGNATURE_SCHEME_ED25519",
        signer: "0x" + "00".repeat(32),
      });
    }
    res.writeHead(404, { "content-type": "text/plain" });
    res.end("Not Found");
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}`,
    get requests() {
      return requests;
    },
    log,
    get down() {
      return state.down;
    },
    set down(v) {
      state.down = v;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
