/**
 * `atlas mcp` (README.md#mcp-server): a Model Context Protocol server on stdio, bound to this
 * home's daemon through the library (src/api/), offering the tools of ./tools.ts. The SDK is
 * imported here, lazily, so that nothing else in Atlas loads it. stdout carries the protocol only:
 * logs go to stderr.
 */
import { Atlas } from "../api/atlas.ts";
import { AtlasError } from "../errors.ts";
import { VERSION } from "../version.ts";
import { TOOLS } from "./tools.ts";

interface ToolCall {
  params: { name: string; arguments?: Record<string, unknown> };
}

/** A tool error as the agent reads it: one line with the code (docs/errors.md) and the exit code. */
function errorText(e: unknown): string {
  const err = e instanceof AtlasError
    ? e
    : new AtlasError("ERR_INTERNAL", (e as Error)?.message ?? String(e), { exit: 1 });
  return `${err.code}: ${err.message}`;
}

/** Serve until stdin closes; ERR_NOT_RUNNING (exit 1) at once when no daemon runs for `home`. */
export async function runMcpServer(home: string): Promise<void> {
  const atlas = await Atlas.attach({ home });
  const { Server } = await import("@modelcontextprotocol/sdk/server/index.js");
  const { StdioServerTransport } = await import("@modelcontextprotocol/sdk/server/stdio.js");
  const { CallToolRequestSchema, ListToolsRequestSchema } = await import("@modelcontextprotocol/sdk/types.js");
  const server = new Server({ name: "atlas", version: VERSION }, { capabilities: { tools: {} } });
  server.setRequestHandler(ListToolsRequestSchema, () => ({
    tools: TOOLS.map(({ name, description, inputSchema }) => ({ name, description, inputSchema })),
  }));
  // Typed here: Deno does not infer it through the SDK's zod schema types.
  server.setRequestHandler(CallToolRequestSchema, async (req: ToolCall) => {
    const tool = TOOLS.find((t) => t.name === req.params.name);
    if (!tool) {
      return { isError: true, content: [{ type: "text" as const, text: `ERR_USAGE: no tool '${req.params.name}'` }] };
    }
    try {
      return { content: [{ type: "text" as const, text: await tool.run(atlas, req.params.arguments ?? {}) }] };
    } catch (e) {
      return { isError: true, content: [{ type: "text" as const, text: errorText(e) }] };
    }
  });
  const closed = new Promise<void>((resolve) => (server.onclose = resolve));
  await server.connect(new StdioServerTransport());
  await closed;
  await atlas.close();
}
