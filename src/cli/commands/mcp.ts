/** `atlas mcp` (README.md#mcp-server): the MCP server on stdio; src/mcp/ loads the SDK only when run. */
import type { Ctx } from "../context.ts";
import type { AnyCommand } from "../options.ts";

export function registerMcp(program: AnyCommand, ctxOf: (cmd: AnyCommand) => Ctx): void {
  program.command("mcp")
    .description("serve this home's daemon to an LLM agent as MCP tools on stdio (send, request, read_inbox, …)")
    .action(async (_o, cmd) => {
      const ctx = ctxOf(cmd);
      const { runMcpServer } = await import("../../mcp/server.ts");
      await runMcpServer(ctx.paths.home);
    });
}
