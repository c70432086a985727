/**
 * `atlas mcp` (README.md#mcp-server) end to end with the MCP SDK's own client: two real daemons,
 * an `atlas mcp` process bound to each, a request sent through one side's tools answered through
 * the other side's.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { atlasCommand, cleanupAll, daemonPair, initHome, runAtlas } from "./helpers/cli.ts";

/** An MCP client talking to `atlas --home <home> mcp` over its stdio. */
async function mcpClient(home: string): Promise<Client> {
  const [cmd, pre] = atlasCommand();
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
  const transport = new StdioClientTransport({
    command: cmd,
    args: [...pre, "--home", home, "mcp"],
    env: { ...env, NODE_OPTIONS: "" },
    stderr: "ignore",
  });
  const client = new Client({ name: "atlas-test", version: "0.0.0" });
  await client.connect(transport);
  return client;
}

type ToolResult = { isError?: boolean; content: { type: string; text: string }[] };

async function call(c: Client, name: string, args: Record<string, unknown>): Promise<ToolResult> {
  return (await c.callTool({ name, arguments: args }, undefined, { timeout: 60_000 })) as ToolResult;
}

/** The JSON a successful tool call returned. */
// deno-lint-ignore no-explicit-any -- each tool returns its own shape; the tests read the fields they check
async function ok(c: Client, name: string, args: Record<string, unknown> = {}): Promise<any> {
  const r = await call(c, name, args);
  assert.ok(!r.isError, `${name}: ${r.content[0]?.text}`);
  return JSON.parse(r.content[0]!.text);
}

describe("atlas mcp with the SDK's client", () => {
  let a: { home: string; nodeId: string };
  let b: { home: string; nodeId: string };
  let ca: Client;
  let cb: Client;

  before(async () => {
    ({ a, b } = await daemonPair());
    [ca, cb] = await Promise.all([mcpClient(a.home), mcpClient(b.home)]);
  });
  after(async () => {
    await Promise.all([ca?.close(), cb?.close()]);
    await cleanupAll();
  });

  test("the server lists its tools, each with an input schema", async () => {
    const { tools } = await ca.listTools();
    assert.deepEqual(
      tools.map((t) => t.name).sort(),
      ["discover", "peers", "ping", "read_inbox", "reply", "request", "send", "status"],
    );
    for (const t of tools) assert.equal(t.inputSchema.type, "object", t.name);
    assert.deepEqual(tools.find((t) => t.name === "request")!.inputSchema.required, ["peer", "body"]);
  });

  test("a request through alpha's tools is answered through beta's read_inbox and reply", async () => {
    const asked = ok(ca, "request", { peer: b.nodeId, body: { q: "six times seven" }, timeout_s: 30 });
    const [m] = await ok(cb, "read_inbox", { after: 0, wait_s: 30 });
    assert.deepEqual(m.body, { q: "six times seven" });
    assert.equal(m.from, a.nodeId);
    const sent = await ok(cb, "reply", { msg_id: m.id, body: { answer: 42 } });
    assert.deepEqual([sent.queued, sent.ack], [false, "received"], "delivered at once over the live session");
    const reply = await asked;
    assert.equal(reply.reply_to, m.id);
    assert.equal(reply.from, b.nodeId);
    assert.deepEqual(reply.body, { answer: 42 });
  });

  test("status, peers and ping answer through the tools", async () => {
    assert.equal((await ok(ca, "status")).node_id, a.nodeId);
    assert.ok((await ok(ca, "peers")).some((p: { node_id: string }) => p.node_id === b.nodeId));
    assert.equal((await ok(ca, "ping", { peer: b.nodeId })).received, 1);
  });

  test("a request nobody answers is an error result naming ERR_TIMEOUT", async () => {
    const r = await call(ca, "request", { peer: b.nodeId, body: "anyone?", timeout_s: 1 });
    assert.equal(r.isError, true);
    assert.match(r.content[0]!.text, /^ERR_TIMEOUT: no reply to msg_[0-9a-f-]+ within 1 s$/);
  });

  test("discover without any bootstrap node configured is an error result that says so", async () => {
    const r = await call(ca, "discover", { skill: "x" });
    assert.equal(r.isError, true);
    assert.match(r.content[0]!.text, /^ERR_[A-Z_]+: .*bootstrap/);
  });

  test("bad arguments are an error result naming ERR_USAGE", async () => {
    const r = await call(ca, "send", { peer: b.nodeId });
    assert.equal(r.isError, true);
    assert.equal(r.content[0]!.text, "ERR_USAGE: 'body' is required: any JSON value");
  });
});

test("atlas mcp without a daemon exits 1 with a hint to start one", async () => {
  const h = await initHome("lonely");
  const r = await runAtlas(["mcp"], { home: h.home });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no daemon is running for .*: start one with `atlas daemon`/);
  await cleanupAll();
});
