/**
 * The tools `atlas mcp` offers an LLM agent (README.md#mcp-server): each a name, a description, a
 * JSON Schema for its input, and a function of the library's `Atlas` client. Results are the JSON
 * shapes of docs/cli.md; messages are spliced from their JSON text so bodies stay verbatim.
 */
import type { Atlas } from "../api/atlas.ts";
import type { Message } from "../api/message.ts";
import { REQUEST_TIMEOUT_MS } from "../config/durations.ts";
import { AtlasError } from "../errors.ts";

type Args = Record<string, unknown>;

export interface Tool {
  name: string;
  description: string;
  inputSchema: { type: "object"; properties: Record<string, object>; required?: string[] };
  /** The result as JSON text. */
  run(atlas: Atlas, a: Args): Promise<string>;
}

/** Longest `wait_s` / `timeout_s`: a tool call should not hang a client for long. */
const MAX_WAIT_S = 300;

const peer = { type: "string", description: "node ID (or a unique prefix), atlas_<id>@host:port, or host:port" };
const body = { description: "the message body: any JSON value" };
const topic = { type: "string", description: "topic (at most 128 bytes)" };
const seconds = (what: string) => ({ type: "number", minimum: 0, maximum: MAX_WAIT_S, description: what });

function str(a: Args, k: string): string {
  const v = a[k];
  if (typeof v !== "string" || v === "") throw new AtlasError("ERR_USAGE", `'${k}' must be a non-empty string`);
  return v;
}
const optStr = (a: Args, k: string): string | undefined => (a[k] === undefined ? undefined : str(a, k));
function num(a: Args, k: string, dflt: number, max = Number.MAX_SAFE_INTEGER): number {
  const v = a[k] ?? dflt;
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0 || v > max) {
    throw new AtlasError("ERR_USAGE", `'${k}' must be a number from 0 to ${max}`);
  }
  return v;
}
function bodyOf(a: Args): unknown {
  if (!("body" in a)) throw new AtlasError("ERR_USAGE", "'body' is required: any JSON value");
  return a.body;
}

/** A message as JSON with its body verbatim (`body_json` is not repeated: the body is the text). */
export function messageText(m: Message): string {
  const { body_json, body: _b, ...head } = m;
  const h = JSON.stringify(head);
  return `${h.slice(0, -1)},"body":${body_json}}`;
}
const messagesText = (ms: Message[]) => `[${ms.map(messageText).join(",")}]`;

export const TOOLS: readonly Tool[] = [
  {
    name: "send",
    description: "Send a message to another agent. It is queued in this node's outbox and delivered with retries; " +
      "returns its msg_id. Use request instead to wait for an answer.",
    inputSchema: {
      type: "object",
      properties: { peer, body, topic, reply_to: { type: "string", description: "msg_id this message answers" } },
      required: ["peer", "body"],
    },
    run: async (atlas, a) =>
      JSON.stringify(
        await atlas.send(str(a, "peer"), bodyOf(a), { topic: optStr(a, "topic"), replyTo: optStr(a, "reply_to") }),
      ),
  },
  {
    name: "request",
    description: "Send a message to another agent and wait for its reply (the message whose reply_to is this " +
      "message's msg_id). Fails with ERR_TIMEOUT if none comes within timeout_s.",
    inputSchema: {
      type: "object",
      properties: { peer, body, topic, timeout_s: seconds("how long to wait for the reply (default 30)") },
      required: ["peer", "body"],
    },
    run: async (atlas, a) => {
      const timeout = num(a, "timeout_s", REQUEST_TIMEOUT_MS / 1000, MAX_WAIT_S) * 1000;
      return messageText(await atlas.request(str(a, "peer"), bodyOf(a), { topic: optStr(a, "topic"), timeout }));
    },
  },
  {
    name: "reply",
    description: "Answer a received message: sent to its sender with reply_to set to its msg_id (and its topic).",
    inputSchema: {
      type: "object",
      properties: { msg_id: { type: "string", description: "id of the received message" }, body },
      required: ["msg_id", "body"],
    },
    run: async (atlas, a) => {
      const id = str(a, "msg_id");
      // Look it up where the daemon stored it: the sender and topic come from the message itself.
      const m = await findMessage(atlas, id);
      return JSON.stringify(await atlas.reply(m, bodyOf(a)));
    },
  },
  {
    name: "read_inbox",
    description: "Read received messages stored after seq `after` (0: from the oldest kept), oldest first. " +
      "With wait_s > 0 and nothing there yet, waits that long for the next one. Pass the last seq you " +
      "handled as `after` next time to get only new messages.",
    inputSchema: {
      type: "object",
      properties: {
        after: { type: "integer", minimum: 0, description: "only messages with a larger seq (default 0)" },
        limit: { type: "integer", minimum: 1, maximum: 1000, description: "at most this many (default 20)" },
        wait_s: seconds("wait this long for a message if none is there (default 0)"),
        from: { type: "string", description: "only from this node ID (in full)" },
        topic,
      },
    },
    run: async (atlas, a) => {
      const o = { after: num(a, "after", 0), from: optStr(a, "from"), topic: optStr(a, "topic") };
      const got = await atlas.read({ ...o, limit: num(a, "limit", 20, 1000) });
      const wait = num(a, "wait_s", 0, MAX_WAIT_S);
      if (got.length > 0 || wait === 0) return messagesText(got);
      return messagesText(await waitForMessage(atlas, o, wait * 1000));
    },
  },
  {
    name: "peers",
    description: "Known peers: node ID, name, skills, address, trust, last seen.",
    inputSchema: { type: "object", properties: {} },
    run: async (atlas) => JSON.stringify(await atlas.peers()),
  },
  {
    name: "discover",
    description: "Ask the bootstrap nodes for agents, optionally by skill or operator.",
    inputSchema: {
      type: "object",
      properties: {
        skill: { type: "string", description: "only agents with this skill" },
        operator: { type: "string", description: "only agents of this Farcaster username" },
        limit: { type: "integer", minimum: 1, maximum: 1000, description: "at most this many" },
      },
    },
    run: async (atlas, a) =>
      JSON.stringify(
        await atlas.discover({
          skill: optStr(a, "skill"),
          operator: optStr(a, "operator"),
          limit: a.limit === undefined ? undefined : num(a, "limit", 0, 1000),
        }),
      ),
  },
  {
    name: "ping",
    description: "Check that a peer answers, and the round-trip time.",
    inputSchema: {
      type: "object",
      properties: { peer, count: { type: "integer", minimum: 1, maximum: 10, description: "pings (default 1)" } },
      required: ["peer"],
    },
    run: async (atlas, a) =>
      JSON.stringify(await atlas.ping(str(a, "peer"), { count: num(a, "count", 1, 10), interval: 200 })),
  },
  {
    name: "status",
    description: "This node: its node ID, addresses, live sessions and outbox depth.",
    inputSchema: { type: "object", properties: {} },
    run: async (atlas) => JSON.stringify(await atlas.status()),
  },
];

/** The stored message with this ID, or ERR_USAGE. */
async function findMessage(atlas: Atlas, id: string): Promise<Message> {
  const m = await atlas.message(id);
  if (!m) throw new AtlasError("ERR_USAGE", `no message ${id} in this node's inbox`);
  return m;
}

/** The first message stored after `o.after` within `ms`, or none. */
async function waitForMessage(
  atlas: Atlas,
  o: { after: number; from?: string; topic?: string },
  ms: number,
): Promise<Message[]> {
  const inbox = await atlas.inbox(o);
  const t = setTimeout(() => inbox.close(), ms);
  try {
    for await (const m of inbox) return [m];
    return [];
  } finally {
    clearTimeout(t);
    inbox.close();
  }
}
