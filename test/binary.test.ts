/**
 * The shipped artifact: dist/atlas (built by `npm run build`, which `npm test` runs first) is
 * one standalone executable. It runs with no node_modules beside it, and two binaries ping.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { copyFile, mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cleanupHomes, initHome, killAll, ROOT, runAtlas, startListener } from "./helpers/cli.ts";
import { assertVersionLine } from "./helpers/version.ts";

const built = join(ROOT, "dist", "atlas");
let bin = "";
let dir = "";

after(async () => {
  killAll();
  await cleanupHomes();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test("dist/atlas runs on its own, copied away from node_modules", async () => {
  const st = await stat(built);
  assert.ok(st.mode & 0o100, "executable bit");
  assert.ok(st.size > 50_000_000, `size ${st.size}`);
  dir = await mkdtemp(join(tmpdir(), "atlas-bin-"));
  bin = join(dir, "atlas");
  await copyFile(built, bin);
  await (await import("node:fs/promises")).chmod(bin, 0o755);
});

test("--version without loading QUIC or libSQL (no native addon extracted)", async () => {
  const cache = join(dir, "cache");
  const r = await runAtlas(["--version"], { bin, env: { XDG_CACHE_HOME: cache } });
  assert.equal(r.code, 0, r.stderr);
  assertVersionLine(r.stdout);
  await assert.rejects(stat(cache), { code: "ENOENT" });
});

test("two copies of the binary make identities, listen, ping each other and exit with the documented codes", async () => {
  const env = { XDG_CACHE_HOME: join(dir, "cache") };
  const a = await initHome("alpha", bin);
  const b = await initHome("beta", bin);
  const l = await startListener(a.home, [], { bin });
  assert.equal(l.nodeId, a.nodeId);
  const r = await runAtlas(["net", "ping", l.address, "--count", "2", "--interval", "50"], { home: b.home, bin, env });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`^Peer : ${a.nodeId.slice(0, 18)}…\\nPath : direct\\n`));
  assert.match(r.stdout, /2 sent, 2 received\n$/);
  const missing = await runAtlas(["net", "ping", l.address], { home: join(dir, "nohome"), bin, env });
  assert.equal(missing.code, 6);
  assert.equal(await l.stop(), 0);
});

test(
  "the binary's daemon moves its datagrams through the embedded atlas_udp addon, and node:dgram with ATLAS_UDP=dgram; status says which",
  { skip: process.platform === "linux" ? false : "the addon is Linux only" },
  async () => {
    const a = await initHome("udp-io", bin);
    for (const [env, loaded] of [[{}, true], [{ ATLAS_UDP: "dgram" }, false]] as const) {
      const l = await startListener(a.home, [], { bin, env: { XDG_CACHE_HOME: join(dir, "cache"), ...env } });
      const maps = await readFile(`/proc/${l.proc.pid}/maps`, "utf8");
      assert.equal(/atlas_udp-[0-9a-f]+\.node/.test(maps), loaded, JSON.stringify(env));
      const st = await runAtlas(["--json", "status"], { home: a.home, bin, env });
      assert.equal(JSON.parse(st.stdout).datagram_io, loaded ? "batched" : "dgram", st.stderr);
      assert.equal(await l.stop(), 0);
    }
  },
);
