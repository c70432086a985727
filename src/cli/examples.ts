/**
 * One example per command, shown at the end of its `--help` (`Example:`). Keyed by the command
 * path; a test parses every example against the real program, so a renamed command or option
 * fails it, and a command without an example fails it too.
 */
export const EXAMPLES: Readonly<Record<string, string>> = {
  "": "atlas --json status",
  "id": "atlas id show",
  "id init": "atlas id init --name alpha",
  "id show": "atlas --json id show",
  "id set-name": "atlas id set-name alpha",
  "id set-bio": "atlas id set-bio 'Summarises papers on request'",
  "id add-skill": "atlas id add-skill summarise",
  "id remove-skill": "atlas id remove-skill summarise",
  "id auth-farcaster": "atlas id auth-farcaster --valid-days 30",
  "id link-farcaster": "atlas id link-farcaster --message-file siwf.txt --signature 0x… --username alice",
  "id unlink-farcaster": "atlas id unlink-farcaster",
  "net": "atlas net peers",
  "net listen": "atlas net listen --host localhost --port 4433",
  "net connect": "atlas net connect 198.51.100.7:4433",
  "net ping": "atlas net ping atlas_5f0c1d2e --count 3",
  "net disconnect": "atlas net disconnect atlas_5f0c1d2e",
  "net ban": "atlas net ban atlas_5f0c1d2e --for 2h",
  "net unban": "atlas net unban atlas_5f0c1d2e",
  "net peers": "atlas net peers --trust verified",
  "net send": `atlas net send atlas_5f0c1d2e '{"task":"summarise"}' --topic jobs`,
  "net inbox": "atlas --json net inbox --follow",
  "mcp": "atlas --home ~/.atlas mcp",
  "net request": `atlas --json net request atlas_5f0c1d2e '{"task":"summarise"}' --timeout 10s`,
  "net reply": "atlas net reply msg_0193a1b2-0000-7000-8000-000000000000 --body-file answer.json",
  "net outbox": "atlas net outbox",
  "net discover": "atlas net discover --skill summarise",
  "config": "atlas config show",
  "config show": "atlas config show",
  "config get": "atlas config get network.port",
  "config set": "atlas config set network.port 4433",
  "daemon": "atlas daemon --port 4433 --relay 198.51.100.1:4433",
  "daemon stop": "atlas daemon stop",
  "status": "atlas status",
  "relay": "atlas relay --host 0.0.0.0 --port 4433",
  "bootstrap": "atlas bootstrap --port 4433",
  "completion": "atlas completion bash > ~/.local/share/bash-completion/completions/atlas",
  "netcheck": "atlas netcheck --stun stun.cloudflare.com:3478",
  "devnet": "atlas devnet up --nodes 3",
  "devnet up": "atlas devnet up --nodes 3 --dir ./.atlas-devnet",
  "devnet down": "atlas devnet down --dir ./.atlas-devnet",
};

/** The help text added after a command's own: its example, if it has one. */
export function exampleHelp(path: string): string {
  const ex = EXAMPLES[path];
  return ex === undefined ? "" : `\nExample:\n  $ ${ex}\n`;
}
