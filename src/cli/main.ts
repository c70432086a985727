import { Command, CommanderError, Option } from "@commander-js/extra-typings";
import { AtlasError, Exit } from "../errors.ts";
import { COMMIT, VERSION, VERSION_LINE } from "../version.ts";
import { guardPipes } from "../util/pipes.ts";
import { LOG_LEVELS } from "../util/log.ts";
import { type Ctx, type GlobalOpts, makeCtx } from "./context.ts";
import { reportError } from "./output.ts";
import type { AnyCommand } from "./options.ts";
import { registerId } from "./commands/id.ts";
import { registerConfig } from "./commands/config.ts";
import { registerNet } from "./commands/net.ts";
import { registerDaemon } from "./commands/daemon.ts";
import { registerMessaging } from "./commands/messaging.ts";
import { registerRequest } from "./commands/request.ts";
import { registerOperator } from "./commands/operator.ts";
import { registerBootstrap, registerDiscover, registerRelay } from "./commands/bootstrap.ts";
import { registerCompletion } from "./commands/completion.ts";
import { registerDevnet } from "./commands/devnet.ts";
import { registerNetcheck } from "./commands/netcheck.ts";
import { registerMcp } from "./commands/mcp.ts";
import { exampleHelp } from "./examples.ts";

/**
 * The `atlas` command line (README.md#commands). Only commander and small modules load at start-up;
 * every command imports what it needs (QUIC, libSQL) inside its action.
 */
export function buildProgram(o: { json?: boolean } = {}): Command {
  // With --json, --version prints its JSON document (docs/cli.md, `version`) instead of the line.
  const version = o.json ? JSON.stringify({ version: VERSION, commit: COMMIT }) : VERSION_LINE;
  const program = new Command("atlas")
    .description("Atlas: peer-to-peer networking for AI agents")
    .version(version, "--version", "print the version and the commit it was built from")
    .option("--home <dir>", "node home (default $ATLAS_HOME or ~/.atlas)")
    .option("--json", "machine-readable output")
    // Choices, so that shell completion offers them (makeCtx checks the values as well).
    .addOption(new Option("--log-level <level>", "log level").choices(LOG_LEVELS))
    .addOption(new Option("--log-format <format>", "log line format").choices(["text", "json"]))
    .showHelpAfterError(false)
    // Every subcommand's --help lists these global options too (inherited by the commands below).
    .configureHelp({ showGlobalOptions: true })
    .exitOverride()
    // Every command but `completion` uses the home: refuse one that other local users could tamper with.
    .hook("preAction", (_program, action) => action.name() === "completion" ? undefined : checkHomeOf(action));

  const ctxOf = (level: "warn" | "info") => (cmd: AnyCommand): Ctx =>
    makeCtx(cmd.optsWithGlobals() as GlobalOpts, level);
  registerId(program, ctxOf("warn"));
  registerOperator(program.commands.find((c) => c.name() === "id")!, ctxOf("warn"));
  const net = registerNet(program, ctxOf("warn"), ctxOf("info"));
  registerMessaging(net, ctxOf("warn"));
  registerRequest(net, ctxOf("warn"));
  registerDiscover(program.commands.find((c) => c.name() === "net")!, ctxOf("warn"));
  registerConfig(program, ctxOf("warn"));

  registerDaemon(program, ctxOf("warn"), ctxOf("info"));
  registerRelay(program, ctxOf("info"));
  registerBootstrap(program, ctxOf("warn"), ctxOf("info"));
  registerNetcheck(program, ctxOf("warn"));
  registerDevnet(program, ctxOf("warn"));
  registerMcp(program, ctxOf("warn"));
  registerCompletion(program);

  program.addHelpText("after", exampleHelp(""));
  for (const c of allSubcommands(program)) c.addHelpText("after", exampleHelp(commandPath(c)));
  for (const c of [program, ...allSubcommands(program)]) c.exitOverride().configureOutput({ outputError: () => {} });
  return program;
}

/** `net send` for that command: its names from below the root. */
export function commandPath(c: AnyCommand): string {
  const names: string[] = [];
  for (let x: AnyCommand | null = c; x?.parent; x = x.parent) names.unshift(x.name());
  return names.join(" ");
}

/** Commands that act as this node and so need its identity (the daemon itself loads it). */
const NEEDS_IDENTITY = /^(net (?!listen$)|status$|id show$)/;

async function checkHomeOf(action: AnyCommand): Promise<void> {
  const { homePaths, resolveHome } = await import("../config/paths.ts");
  const { checkHome, requireIdentity } = await import("../config/home-check.ts");
  const paths = homePaths(resolveHome((action.optsWithGlobals() as GlobalOpts).home));
  await checkHome(paths);
  if (NEEDS_IDENTITY.test(commandPath(action))) await requireIdentity(paths);
}

export function allSubcommands(c: AnyCommand): AnyCommand[] {
  return c.commands.flatMap((s) => [s, ...allSubcommands(s)]);
}

/** Run the CLI; returns the exit code (README.md#commands). Never throws, never prints a stack trace. */
export async function main(argv: string[]): Promise<number> {
  guardPipes();
  const json = argv.includes("--json");
  try {
    const program = buildProgram({ json });
    await program.parseAsync(argv, { from: "user" });
    return Exit.OK;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === "commander.helpDisplayed" || e.code === "commander.version" || e.code === "commander.help") {
        return Exit.OK;
      }
      if (e.code === "commander.executeSubCommandAsync") return Exit.OK;
      const msg = e.message.replace(/^error:\s*/, "");
      // `atlas net` alone prints help and exits 1 in commander; treat it as usage.
      return reportError(new AtlasError("ERR_USAGE", msg), json);
    }
    return reportError(e, json);
  }
}
