import { Argument } from "@commander-js/extra-typings";
import type { AnyCommand } from "../options.ts";

/** `atlas completion bash|zsh|fish` (README.md#commands): the script on stdout, generated from `program`. */
export function registerCompletion(program: AnyCommand): AnyCommand {
  return program
    .command("completion")
    .description("print a shell completion script (bash, zsh or fish)")
    .addArgument(new Argument("<shell>", "bash, zsh or fish").choices(["bash", "zsh", "fish"] as const))
    .action(async (shell: "bash" | "zsh" | "fish") => {
      const { completionScript } = await import("../completion.ts");
      process.stdout.write(completionScript(shell, program));
    });
}
