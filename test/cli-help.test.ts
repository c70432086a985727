/**
 * Help and shell completion (issue 13): every subcommand's --help lists the global options and
 * an example that parses against the real program; `atlas completion bash|zsh|fish` prints a
 * script generated from the commands, syntactically valid for its shell.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { allSubcommands, buildProgram, commandPath } from "../src/cli/main.ts";
import { EXAMPLES } from "../src/cli/examples.ts";
import { cleanupHomes, initHome, runAtlas, tmpHome } from "./helpers/cli.ts";

/** Whether `shell` is installed (the zsh and fish syntax checks run only where it is). */
const has = (shell: string) => spawnSync(shell, ["-c", "exit 0"]).status === 0;

/** `<shell> -n` on a script (from a file: fish does not check stdin). */
async function syntaxCheck(shell: string, script: string): Promise<{ status: number | null; stderr: string }> {
  const file = join(await tmpHome(), `completion.${shell}`);
  await writeFile(file, script);
  const r = spawnSync(shell, ["-n", file]);
  return { status: r.status, stderr: String(r.stderr) };
}

/** A shell-like split of one example line: quotes kept together, a redirection and what follows dropped. */
function words(line: string): string[] {
  const out: string[] = [];
  for (const m of line.matchAll(/'([^']*)'|"([^"]*)"|(\S+)/g)) {
    if (m[3] === ">") break;
    out.push(m[1] ?? m[2] ?? m[3]!);
  }
  return out;
}

describe("help", () => {
  after(cleanupHomes);

  test("every command has an example, and each parses to that command (or one below it)", async () => {
    const program = buildProgram();
    const all = [program, ...allSubcommands(program)];
    const paths = all.map(commandPath);
    assert.deepEqual(paths.filter((p) => EXAMPLES[p] === undefined), [], "commands without an example");
    assert.deepEqual(Object.keys(EXAMPLES).filter((p) => !paths.includes(p)), [], "examples of no command");

    // A home with an identity: the `net` commands refuse one without (exit 6) before their action.
    const { home } = await initHome("help");
    for (const path of paths) {
      const fresh = buildProgram();
      let ran: string | null = null;
      for (const c of [fresh, ...allSubcommands(fresh)]) c.action(() => void (ran = commandPath(c)));
      const argv = words(EXAMPLES[path]!);
      assert.equal(argv[0], "atlas", EXAMPLES[path]);
      // --home: the pre-action home check looks at a safe, fresh home, not the user's.
      await fresh.parseAsync(["--home", home, ...argv.slice(1)], { from: "user" });
      assert.ok(ran !== null && (ran === path || (ran as string).startsWith(`${path} `) || path === ""), path);
    }
  });

  test("`atlas net send --help` shows the global options and an Example line", async () => {
    const r = await runAtlas(["net", "send", "--help"]);
    assert.equal(r.code, 0, r.stderr);
    const global = r.stdout.slice(r.stdout.indexOf("Global Options:"));
    for (const o of ["--json", "--home <dir>", "--log-level <level>", "--log-format <format>"]) {
      assert.ok(r.stdout.includes("Global Options:") && global.includes(o), o);
    }
    assert.match(r.stdout, /\nExample:\n {2}\$ atlas net send /);
  });
});

describe("completion", () => {
  after(cleanupHomes);
  const top = buildProgram().commands.map((c) => c.name());

  test("the bash completion script is valid bash and offers every top-level command", async () => {
    const r = await runAtlas(["completion", "bash"]);
    assert.equal(r.code, 0, r.stderr);
    const check = await syntaxCheck("bash", r.stdout);
    assert.equal(check.status, 0, check.stderr);
    const line = /"\)\n\s+cmds="([^"]*)"/.exec(r.stdout)?.[1]?.split(" ") ?? [];
    for (const name of top) assert.ok(line.includes(name), `${name} missing from ${line.join(" ")}`);
    assert.ok(top.includes("completion") && top.includes("net"));
  });

  test("the bash completion completes a nested command path and an option's choices", async () => {
    const script = (await runAtlas(["completion", "bash"])).stdout;
    const complete = (...typed: string[]) => {
      const r = spawnSync("bash", [
        "-c",
        `${script}\nCOMP_WORDS=("$@"); COMP_CWORD=$((\${#COMP_WORDS[@]}-1));
_atlas_completion; echo "\${COMPREPLY[*]}"`,
        "bash",
        ...typed,
      ]);
      return String(r.stdout).trim();
    };
    assert.equal(complete("atlas", "--home", "/tmp", "net", "se"), "send");
    assert.equal(complete("atlas", "net", "send", "--to"), "--topic");
    assert.equal(complete("atlas", "--log-level", ""), "debug info warn error silent");
    assert.equal(complete("atlas", "completion", ""), "bash zsh fish");
  });

  for (const shell of ["zsh", "fish"] as const) {
    test(`${shell}: a non-empty script${has(shell) ? `, valid syntax (${shell} -n)` : ""}`, async () => {
      const r = await runAtlas(["completion", shell]);
      assert.equal(r.code, 0, r.stderr);
      for (const name of top) assert.ok(r.stdout.includes(name), name);
      if (!has(shell)) return;
      const check = await syntaxCheck(shell, r.stdout);
      assert.equal(check.status, 0, check.stderr);
    });
  }

  test("an unknown shell is a usage error", async () => {
    const r = await runAtlas(["completion", "ksh"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^error: .*bash, zsh, fish/);
  });
});
