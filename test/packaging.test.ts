/**
 * The systemd units in packaging/: systemd itself accepts them (`systemd-analyze verify`), the three
 * roles share one hardening, and the layout they give a node (an unprivileged user's 0700 home under
 * a root-owned directory, the identity made by ExecStartPre) passes Atlas's own checks when run.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { chmod, chown, cp, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BUNDLE, NO_STUN, ROOT, waitForListening } from "./helpers/cli.ts";

const ROLES = ["daemon", "relay", "bootstrap"] as const;
const unitFile = (role: string) => join(ROOT, "packaging", `atlas-${role}.service`);
const unit = (role: string) => readFile(unitFile(role), "utf8");

const dirs: string[] = [];
const procs: ChildProcess[] = [];
after(async () => {
  for (const p of procs) p.kill("SIGKILL");
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function tmp(prefix: string): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

/** `Key=value` lines of a unit, in order (comments and section headers left out). */
function directives(text: string): [string, string][] {
  return text.split("\n").filter((l) => /^[A-Za-z]+=/.test(l)).map((l) => {
    const i = l.indexOf("=");
    return [l.slice(0, i), l.slice(i + 1)];
  });
}

test("the three units differ only in their role, and keep the promised settings", async () => {
  // Comments included: a unit's explanation must not drift from the others either.
  const asDaemon = (text: string, role: string) =>
    text.replace(/^Description=.*$/m, "").replace(new RegExp(`(atlas[-/ ])${role}\\b`, "g"), "$1daemon");
  const daemon = await unit("daemon");
  for (const role of ROLES) {
    const text = await unit(role);
    assert.equal(asDaemon(text, role), asDaemon(daemon, "daemon"), `atlas-${role}.service drifted from the daemon's`);
    const d = new Map(directives(text));
    assert.equal(d.get("ExecStart"), `/usr/local/bin/atlas ${role}`);
    assert.equal(d.get("User"), "atlas");
    assert.equal(d.get("StateDirectory"), `atlas/${role}`);
    assert.equal(d.get("StateDirectoryMode"), "0700");
    assert.equal(d.get("Environment"), "XDG_CACHE_HOME=/var/cache"); // the last Environment= line
    assert.ok(text.includes(`\nEnvironment=ATLAS_HOME=/var/lib/atlas/${role}\n`));
    assert.equal(d.get("Restart"), "on-failure");
    assert.equal(d.get("NoNewPrivileges"), "yes");
    assert.equal(d.get("ProtectSystem"), "strict");
  }
});

test("systemd-analyze verify accepts the units", async (t) => {
  if (spawnSync("systemd-analyze", ["--version"]).error) {
    // CI installs Debian's systemd package (.ci/run); there a missing tool is a failure.
    if (process.env.CI === "true") assert.fail("systemd-analyze is missing in CI (.ci/run installs Debian's systemd)");
    t.skip("systemd-analyze is not installed (Debian package systemd); in CI this test fails instead");
    return;
  }
  // verify insists that ExecStart= binaries exist. Rather than install anything, give it a root of
  // its own: the units in /etc/systemd/system, the system's units (targets they depend on) and
  // stand-ins for /bin/sh and /usr/local/bin/atlas. Absolute symlinks would resolve inside it.
  const root = await tmp("atlas-units-");
  await mkdir(join(root, "etc", "systemd", "system"), { recursive: true });
  await mkdir(join(root, "usr", "lib", "systemd"), { recursive: true });
  await cp("/usr/lib/systemd/system", join(root, "usr", "lib", "systemd", "system"), { recursive: true });
  for (const bin of ["usr/bin/sh", "usr/local/bin/atlas"]) {
    await mkdir(join(root, bin, ".."), { recursive: true });
    await writeFile(join(root, bin), "#!/bin/sh\n", { mode: 0o755 });
  }
  await symlink("usr/bin", join(root, "bin"));
  const names = ROLES.map((r) => `atlas-${r}.service`);
  for (const n of names) await cp(join(ROOT, "packaging", n), join(root, "etc", "systemd", "system", n));
  const r = spawnSync("systemd-analyze", ["verify", `--root=${root}`, ...names], { encoding: "utf8" });
  // It exits 0 on unknown keys and bad values, which it only warns about: any output is a failure.
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr + r.stdout, "");
});

test("the daemon unit's layout works as an unprivileged user: identity made once, home check passed, daemon running", async () => {
  // /var/lib/atlas (root 0755) / daemon (the service user, 0700), as StateDirectory= makes it.
  // As root, the service user is nobody; otherwise it is whoever runs the test.
  const asRoot = process.getuid?.() === 0;
  const uid = asRoot ? 65534 : process.getuid!();
  const ids = asRoot ? { uid, gid: 65534 } : {};
  const base = await tmp("atlas-layout-");
  await chmod(base, 0o755);
  const home = join(base, "var", "lib", "atlas", "daemon");
  await mkdir(home, { recursive: true, mode: 0o755 });
  await chmod(home, 0o700);
  if (asRoot) await chown(home, uid, 65534);
  // /usr/local/bin/atlas, here the bundle.
  const bin = join(base, "atlas");
  await writeFile(bin, `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(BUNDLE)} "$@"\n`, {
    mode: 0o755,
  });

  const text = await unit("daemon");
  const d = new Map(directives(text));
  const pre = /^\/bin\/sh -c '(.*)'$/.exec(d.get("ExecStartPre") ?? "");
  assert.ok(pre, "ExecStartPre runs a /bin/sh script");
  // systemd turns `$$` into `$` before the shell sees it.
  const script = pre[1]!.replaceAll("$$", "$").replaceAll("/usr/local/bin/atlas", bin);
  const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", ATLAS_HOME: home, HOME: "/nonexistent", NODE_OPTIONS: "" };
  const run = (args: string[]) => {
    // UMask=0077 as in the unit.
    const r = spawnSync("/bin/sh", ["-c", `umask 077; exec "$@"`, "sh", ...args], {
      env,
      ...ids,
      encoding: "utf8",
      timeout: 30_000,
    });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };

  const first = run(["/bin/sh", "-c", script]);
  assert.equal(first.code, 0, first.err);
  assert.match(first.out, /^Node ID : atlas_[0-9a-f]{64}\n/);
  const key = join(home, "keys", "node-key.pem");
  const pem = await readFile(key, "utf8");
  const again = run(["/bin/sh", "-c", script]);
  assert.equal(again.code, 0, again.err);
  assert.equal(again.out, "", "a second start does not touch the identity");
  assert.equal(await readFile(key, "utf8"), pem);
  for (const [p, mode] of [[home, 0o700], [join(home, "keys"), 0o700], [key, 0o600]] as const) {
    const st = await stat(p);
    assert.equal(st.mode & 0o777, mode, p);
    assert.equal(st.uid, uid, p);
  }

  // No public STUN servers, loopback and any port: the test stays off the network.
  const cfg = join(home, "state", "config.toml");
  await writeFile(cfg, NO_STUN, { mode: 0o600 });
  if (asRoot) await chown(cfg, uid, 65534);
  const exec = d.get("ExecStart")!.split(" ");
  assert.equal(exec[0], "/usr/local/bin/atlas");
  const p = spawn(bin, [...exec.slice(1), "--host", "127.0.0.1", "--port", "0", "--json"], {
    env,
    ...ids,
    stdio: ["ignore", "pipe", "pipe"],
  });
  procs.push(p);
  const l = await waitForListening(p, () => {}, "daemon");
  const sock = await stat(join(home, "state", "daemon.sock"));
  assert.ok(sock.isSocket());
  assert.equal(sock.mode & 0o777, 0o600);
  const status = run([bin, "status", "--json"]);
  assert.equal(status.code, 0, status.err);
  assert.equal(JSON.parse(status.out).running, true);
  assert.equal(await l.stop(), 0, l.stderr());
});
