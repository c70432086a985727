/**
 * `atlas completion bash|zsh|fish`: shell completion scripts generated from the commander program
 * itself (its commands, options and option values), so they never drift from the CLI. Each
 * script finds the command path typed so far (`net send`), skipping options and their values,
 * then offers that command's subcommands or options, or an option's value (files, directories,
 * a fixed set of choices).
 */
import type { Help, Option } from "@commander-js/extra-typings";
import type { AnyCommand } from "./options.ts";

export const SHELLS = ["bash", "zsh", "fish"] as const;
export type Shell = (typeof SHELLS)[number];

/** What an option's value completes to. */
type ValueKind = "none" | "any" | "file" | "dir" | string[];

interface OptSpec {
  names: string[];
  description: string;
  value: ValueKind;
}

/** One command of the tree: its path from the root (`""`, `"net"`, `"net send"`). */
interface CmdSpec {
  path: string;
  subcommands: { name: string; description: string }[];
  options: OptSpec[];
}

function optSpec(o: Option): OptSpec {
  const value: ValueKind = o.argChoices
    ? [...o.argChoices]
    : !o.required && !o.optional
    ? "none"
    : /<dir>/.test(o.flags)
    ? "dir"
    : /<file>/.test(o.flags)
    ? "file"
    : "any";
  return { names: [o.long, o.short].filter((n): n is string => !!n), description: firstLine(o.description), value };
}

const firstLine = (s: string): string => s.split("\n")[0]!.trim();

/** Every command, root first; the root's options (less --version) are offered at every level. */
export function commandTree(program: AnyCommand): CmdSpec[] {
  const help: Help = program.createHelp();
  const global = help.visibleOptions(program).filter((o) => o.long !== "--version" && o.long !== "--help");
  const out: CmdSpec[] = [];
  const walk = (c: AnyCommand, path: string[]) => {
    const subs = help.visibleCommands(c).filter((s) => s.name() !== "help") as AnyCommand[];
    const own = help.visibleOptions(c);
    // A command without subcommands offers its first argument's choices in their place (`completion bash`).
    const arg = c.registeredArguments[0];
    const choices = (arg?.argChoices ?? []).map((name) => ({ name, description: arg!.description }));
    out.push({
      path: path.join(" "),
      subcommands: subs.length === 0
        ? choices
        : subs.flatMap((s) =>
          [s.name(), ...s.aliases()].map((name) => ({ name, description: firstLine(s.description()) }))
        ),
      options: [...own, ...(path.length > 0 ? global : [])].map(optSpec),
    });
    for (const s of subs) walk(s, [...path, s.name()]);
  };
  walk(program, []);
  return out;
}

export function completionScript(shell: Shell, program: AnyCommand): string {
  const tree = commandTree(program);
  const name = program.name();
  return shell === "bash" ? bashScript(name, tree) : shell === "zsh" ? zshScript(name, tree) : fishScript(name, tree);
}

/** Every option (by each of its names) that takes a value, with that value's kind. */
function valueOptions(tree: CmdSpec[]): Map<string, ValueKind> {
  const m = new Map<string, ValueKind>();
  for (const c of tree) {
    for (const o of c.options) {
      if (o.value !== "none") { for (const n of o.names) m.set(n, o.value); }
    }
  }
  return m;
}

const paths = (tree: CmdSpec[]) => tree.filter((c) => c.path !== "").map((c) => c.path).join("|");

/** Shell code of the walk over the typed words: shared by bash and zsh (same syntax here). */
function pathWalk(tree: CmdSpec[], words: string, first: number, last: string): string {
  // words[i]: the i-th typed word (bash's COMP_WORDS is 0-based, zsh's words 1-based)
  return `  local cmdpath="" word i
  local value_opts=" ${[...valueOptions(tree).keys()].join(" ")} "
  local paths="|${paths(tree)}|"
  for ((i = ${first}; i < ${last}; i++)); do
    word="\${${words}[i]}"
    if [[ "$value_opts" == *" $word "* ]]; then ((i++)); continue; fi
    [[ "$word" == -* ]] && continue
    if [[ "$paths" == *"|\${cmdpath:+$cmdpath }$word|"* ]]; then cmdpath="\${cmdpath:+$cmdpath }$word"; fi
  done`;
}

/** Group options by how their value completes, for a `case "$prev"` in bash and zsh. */
function valueCases(tree: CmdSpec[], render: (kind: ValueKind) => string): string {
  const groups = new Map<string, { kind: ValueKind; names: string[] }>();
  for (const [n, kind] of valueOptions(tree)) {
    const key = JSON.stringify(kind);
    if (!groups.has(key)) groups.set(key, { kind, names: [] });
    groups.get(key)!.names.push(n);
  }
  return [...groups.values()].map((g) => `    ${g.names.join("|")}) ${render(g.kind)} ;;`).join("\n");
}

function bashScript(name: string, tree: CmdSpec[]): string {
  const fn = `_${name}_completion`;
  const compgen = (k: ValueKind) =>
    k === "file"
      ? `COMPREPLY=($(compgen -f -- "$cur")); return`
      : k === "dir"
      ? `COMPREPLY=($(compgen -d -- "$cur")); return`
      : Array.isArray(k)
      ? `COMPREPLY=($(compgen -W "${k.join(" ")}" -- "$cur")); return`
      : `COMPREPLY=(); return`;
  const cases = tree.map((c) =>
    `    "${c.path}")
      cmds="${c.subcommands.map((s) => s.name).join(" ")}"
      opts="${c.options.flatMap((o) => o.names).join(" ")}" ;;`
  ).join("\n");
  return `# bash completion for ${name}: generated by \`${name} completion bash\` from this version's commands.
# Install: ${name} completion bash > ~/.local/share/bash-completion/completions/${name}
#      or: echo 'source <(${name} completion bash)' >> ~/.bashrc
${fn}() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="\${COMP_WORDS[COMP_CWORD-1]}" cmds="" opts=""
${pathWalk(tree, "COMP_WORDS", 1, "COMP_CWORD")}
  case "$prev" in
${valueCases(tree, compgen)}
  esac
  case "$cmdpath" in
${cases}
  esac
  if [[ "$cur" == -* || -z "$cmds" ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$cmds" -- "$cur"))
  fi
}
complete -F ${fn} ${name}
`;
}

/** `'text'` for zsh and fish: single quotes, an embedded one closed, escaped and reopened. */
const sq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
/** `name:description` for zsh's _describe (a colon in the name or description escaped). */
const described = (n: string, d: string) => sq(`${n.replace(/:/g, "\\:")}:${d.replace(/:/g, "\\:")}`);

function zshScript(name: string, tree: CmdSpec[]): string {
  const fn = `_${name}`;
  const action = (k: ValueKind) =>
    k === "file"
      ? "_files; return"
      : k === "dir"
      ? "_files -/; return"
      : Array.isArray(k)
      ? `compadd -- ${k.join(" ")}; return`
      : "_message 'value'; return";
  const cases = tree.map((c) =>
    `    "${c.path}")
      cmds=(${c.subcommands.map((s) => described(s.name, s.description)).join(" ")})
      opts=(${c.options.flatMap((o) => o.names.map((n) => described(n, o.description))).join(" ")}) ;;`
  ).join("\n");
  return `#compdef ${name}
# zsh completion for ${name}: generated by \`${name} completion zsh\` from this version's commands.
# Install: ${name} completion zsh > "\${fpath[1]}/_${name}"   (or: source <(${name} completion zsh))
${fn}() {
  local -a cmds opts
${pathWalk(tree, "words", 2, "CURRENT")}
  case "\${words[CURRENT-1]}" in
${valueCases(tree, action)}
  esac
  case "$cmdpath" in
${cases}
  esac
  if [[ "$PREFIX" == -* || \${#cmds} -eq 0 ]]; then
    _describe -t options 'option' opts
  else
    _describe -t commands 'command' cmds
  fi
}
if [[ "\${zsh_eval_context[-1]}" == loadautofunc ]]; then
  ${fn} "$@"
else
  compdef ${fn} ${name}
fi
`;
}

function fishScript(name: string, tree: CmdSpec[]): string {
  const pathFn = `__${name}_path`;
  const atFn = `__${name}_at`;
  const valueOpts = [...valueOptions(tree).keys()];
  const lines: string[] = [];
  for (const c of tree) {
    const cond = `-n ${sq(`${atFn} ${JSON.stringify(c.path)}`)}`;
    for (const s of c.subcommands) lines.push(`complete -c ${name} ${cond} -a ${sq(s.name)} -d ${sq(s.description)}`);
    for (const o of c.options) {
      const flags = o.names.map((n) => (n.startsWith("--") ? `-l ${n.slice(2)}` : `-s ${n.slice(1)}`)).join(" ");
      const v = o.value;
      const value = v === "none"
        ? ""
        : v === "file"
        ? " -r -F"
        : v === "dir"
        ? ` -x -a '(__fish_complete_directories)'`
        : Array.isArray(v)
        ? ` -x -a ${sq(v.join(" "))}`
        : " -x";
      lines.push(`complete -c ${name} ${cond} ${flags}${value} -d ${sq(o.description)}`);
    }
  }
  return `# fish completion for ${name}: generated by \`${name} completion fish\` from this version's commands.
# Install: ${name} completion fish > ~/.config/fish/completions/${name}.fish

# The command path typed so far ("net send"), options and their values skipped.
function ${pathFn}
    set -l tokens (commandline -opc)
    set -e tokens[1]
    set -l cmdpath
    set -l skip 0
    for t in $tokens
        if test $skip = 1
            set skip 0
            continue
        end
        if contains -- $t ${valueOpts.join(" ")}
            set skip 1
            continue
        end
        string match -q -- '-*' $t; and continue
        set -l cand (string join ' ' $cmdpath $t)
        if contains -- $cand ${tree.filter((c) => c.path !== "").map((c) => sq(c.path)).join(" ")}
            set cmdpath $cmdpath $t
        end
    end
    string join ' ' $cmdpath
end

function ${atFn}
    set -l p (${pathFn})
    test "$p" = "$argv[1]"
end

complete -c ${name} -f
${lines.join("\n")}
`;
}
