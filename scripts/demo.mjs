// Two-node demo on loopback: two temporary homes, a daemon, then connect / ping / peers / send /
// inbox / disconnect — the real CLI, as a user would run it. `npm run demo`.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const cli = join(root, "dist", "atlas.mjs");
const dir = mkdtempSync(join(tmpdir(), "atlas-demo-"));
const alpha = join(dir, "alpha");
const beta = join(dir, "beta");

function atlas(home, ...args) {
  process.stdout.write(`\n$ atlas --home ${home.replace(dir, "$DEMO")} ${args.map((a) => (/[\s{}"]/.test(a) ? `'${a}'` : a)).join(" ")}\n`);
  try {
    process.stdout.write(execFileSync(process.execPath, [cli, "--home", home, ...args], { encoding: "utf8" }));
  } catch (e) {
    process.stdout.write((e.stdout ?? "") + (e.stderr ?? ""));
  }
}

atlas(alpha, "id", "init", "--name", "alpha");
atlas(beta, "id", "init", "--name", "beta");
atlas(alpha, "id", "add-skill", "summarise");
process.stdout.write(`\n$ atlas --home $DEMO/alpha net listen --host 127.0.0.1 --port 0 &\n`);
const listener = spawn(process.execPath, [cli, "--home", alpha, "net", "listen", "--host", "127.0.0.1", "--port", "0", "--json", "--log-level", "warn"], { stdio: ["ignore", "pipe", "inherit"] });
const addr = await new Promise((resolve, reject) => {
  let buf = "";
  listener.stdout.on("data", (d) => {
    buf += d;
    if (buf.includes("\n")) resolve(JSON.parse(buf.split("\n")[0]).address);
  });
  listener.on("exit", (c) => reject(new Error(`listener exited with ${c}`)));
  setTimeout(() => reject(new Error("listener did not start")), 15000);
});
process.stdout.write(`(listening on ${addr})\n`);
try {
  atlas(beta, "net", "connect", addr);
  atlas(beta, "net", "ping", addr, "--count", "3", "--interval", "200");
  atlas(beta, "net", "peers");
  atlas(beta, "net", "send", addr, '{"task":"summarise","text":"hello from beta"}', "--topic", "demo");
  atlas(alpha, "net", "inbox");
  atlas(beta, "net", "disconnect", addr);
} finally {
  listener.kill("SIGTERM");
  await new Promise((r) => listener.on("exit", r));
  rmSync(dir, { recursive: true, force: true });
}
