import type { AnyCommand } from "../options.ts";
import type { Ctx } from "../context.ts";

/** `atlas config show | get | set` (src/config/defaults.ts). */
export function registerConfig(program: AnyCommand, ctxOf: (cmd: AnyCommand) => Ctx): void {
  const c = program.command("config").description("show and edit state/config.toml");
  c.command("show")
    .description("print the effective configuration")
    .action(async (_o, cmd) => {
      const ctx = ctxOf(cmd);
      const cfg = await ctx.config();
      if (ctx.json) return ctx.out.data(cfg);
      const { renderConfig } = await import("../../config/edit.ts");
      process.stdout.write(renderConfig(cfg));
    });
  c.command("get")
    .description("print one key (section.key) or section")
    .argument("<key>")
    .action(async (key: string, _o, cmd) => {
      const ctx = ctxOf(cmd);
      const { getConfigValue, formatConfigValue } = await import("../../config/edit.ts");
      const v = getConfigValue(await ctx.config(), key);
      if (ctx.json) ctx.out.data(v);
      else ctx.out.line(formatConfigValue(v, key).replace(/\n$/, ""));
    });
  c.command("set")
    .description("set one key (validated against the schema)")
    .argument("<key>")
    .argument("<value>")
    .action(async (key: string, value: string, _o, cmd) => {
      const ctx = ctxOf(cmd);
      const { setConfigValue, getConfigValue, formatConfigValue } = await import("../../config/edit.ts");
      await setConfigValue(ctx.paths, key, value);
      const v = getConfigValue(await ctx.config(), key);
      if (ctx.json) ctx.out.data({ key, value: v });
      else ctx.out.line(`${key} = ${formatConfigValue(v, key).replace(/\n$/, "")}`);
    });
}
