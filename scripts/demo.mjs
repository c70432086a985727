// Demo on loopback, the real CLI as a user would run it (`npm run demo`): a relay node, alpha's
// daemon registered with it, beta's connect / ping / peers / send / inbox / disconnect by address,
// then gamma — who knows only alpha's node ID and the relay — reaching alpha through the relay.
// Nothing leaves the machine (no STUN servers are asked).
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const cli = join(root, "dist", "atlas.mjs");
const dir = mkdtempSync(join(tmpdir(), "atlas-demo-"));
const alpha = join(dir, "alpha");
const beta = join(dir, "beta");
const gamma = join(dir, "gamma");
const relayHome = join(dir, "relay");

function atlas(home, ...args) {
  process.stdout.write(
    `\n$ atlas --home ${home.replace(dir, "$DEMO")} ${
      args.map((a) => (a === "" || /[\s{}"]/.test(a) ? `'${a}'` : a)).join(" ")
    }\n`,
  );
  try {
    process.stdout.write(execFileSync(process.execPath, [cli, "--home", home, ...args], { encoding: "utf8" }));
  } catch (e) {
    process.stdout.write((e.stdout ?? "") + (e.stderr ?? ""));
  }
}

/** Start a long-running command in the background; resolves to its first JSON line. */
async function background(home, args) {
  process.stdout.write(`\n$ atlas --home ${home.replace(dir, "$DEMO")} ${args.join(" ")} &\n`);
  const p = spawn(process.execPath, [cli, "--home", home, ...args, "--json", "--log-level", "warn"], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  procs.push(p);
  const first = await new Promise((resolve, reject) => {
    let buf = "";
    p.stdout.on("data", (d) => {
      buf += d;
      if (buf.includes("\n")) resolve(JSON.parse(buf.split("\n")[0]));
    });
    p.on("exit", (c) => reject(new Error(`${args[0]} exited with ${c}`)));
    setTimeout(() => reject(new Error(`${args[0]} did not start`)), 15000);
  });
  process.stdout.write(`(${args[0]} listening on ${first.address})\n`);
  return first;
}

const procs = [];
try {
  for (const [home, name] of [[relayHome, "relay"], [alpha, "alpha"], [beta, "beta"], [gamma, "gamma"]]) {
    atlas(home, "id", "init", "--name", name);
    atlas(home, "config", "set", "stun.servers", "");
  }
  atlas(alpha, "id", "add-skill", "summarise");
  const relay = await background(relayHome, ["relay", "--host", "127.0.0.1", "--port", "0"]);
  const alphaNode = await background(alpha, ["daemon", "--host", "127.0.0.1", "--port", "0", "--relay", relay.address]);
  const addr = alphaNode.address;
  for (let i = 0; i < 50; i++) {
    const st = JSON.parse(
      execFileSync(process.execPath, [cli, "--home", alpha, "status", "--json"], { encoding: "utf8" }),
    );
    if (st.relays?.[0]?.registered) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  atlas(alpha, "status");
  atlas(beta, "net", "connect", addr);
  atlas(beta, "net", "ping", addr, "--count", "3", "--interval", "200");
  atlas(beta, "net", "peers");
  atlas(beta, "net", "send", addr, '{"task":"summarise","text":"hello from beta"}', "--topic", "demo");
  atlas(alpha, "net", "inbox");
  atlas(beta, "net", "disconnect", addr);
  // gamma has never seen alpha's address: only its node ID and a relay to use.
  atlas(gamma, "config", "set", "network.relays", relay.address);
  atlas(gamma, "net", "ping", alphaNode.node_id, "--count", "3", "--interval", "200");
  process.stdout.write(
    "\n(the relayed handshake told gamma alpha's listen address: on loopback the next dial goes direct)\n",
  );
  atlas(gamma, "net", "send", alphaNode.node_id, '{"task":"summarise","text":"hello again"}');
  atlas(gamma, "net", "peers");
} finally {
  for (const p of procs.reverse()) {
    p.kill("SIGTERM");
    if (p.exitCode === null) await new Promise((r) => p.on("exit", r));
  }
  rmSync(dir, { recursive: true, force: true });
}
