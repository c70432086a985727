/**
 * The home's StrictModes (as OpenSSH checks ~/.ssh). Whoever can write to the home, or to any
 * directory above it, can rename `state/` and plant a `config.toml` (relays of their choosing), a
 * profile or a control socket the CLI would talk to. So before a command uses a home:
 *
 * - the home, `keys/` and `state/` (which holds config.toml, profile.toml, peers.db and the control
 *   socket) must be owned by the user or root and not writable by group or others;
 * - so must `state/config.toml`, `state/profile.toml` and `state/peers.db`; the key file must be
 *   owned by the user or root (its mode is checked by loadIdentity, which also refuses reading);
 * - every directory above the home (its real path too, when symlinks lead there) must be owned by
 *   the user or root and not writable by group or others — unless it is a root-owned sticky
 *   directory such as /tmp, where others may add entries but not rename ours.
 *
 * A home that does not exist yet is judged by the directories above it: Atlas creates it 0700.
 */
import { access, constants, realpath, stat } from "node:fs/promises";
import type { Stats } from "node:fs";
import { userInfo } from "node:os";
import { dirname } from "node:path";
import { AtlasError } from "../errors.ts";
import type { HomePaths } from "./paths.ts";

/** The calling process's uid, or undefined where files have no POSIX owners (Windows). */
function processUid(): number | undefined {
  return typeof process.getuid === "function" ? process.getuid() : undefined;
}

/** Refuse (ERR_HOME_INSECURE, one line naming the chmod/chown fix) a home others could tamper with. */
export async function checkHome(paths: HomePaths, uid: number | undefined = processUid()): Promise<void> {
  if (uid === undefined) return;
  const judge = new Judge(paths.home, uid);
  await checkReadable(paths.home, judge);
  for (const dir of await dirsAbove(paths.home)) await judge.check(dir, { stickyOk: true });
  for (const p of [paths.home, paths.keysDir, paths.stateDir, paths.configFile, paths.profileFile, paths.dbFile]) {
    await judge.check(p, { stickyOk: false });
  }
  await judge.check(paths.keyFile, { ownerOnly: true });
}

/**
 * A home that exists but that this user may not enter: said so with its owner and mode (else the
 * first symptom would be a baffling `cannot create directory … EACCES` for a directory that exists).
 */
async function checkReadable(home: string, judge: Judge): Promise<void> {
  const st = await statOrNull(home);
  if (!st) return;
  try {
    await access(home, constants.R_OK | constants.X_OK);
  } catch {
    const mode = (st.mode & 0o7777).toString(8).padStart(4, "0");
    throw new AtlasError(
      "ERR_IO",
      `cannot use home ${home}: it belongs to ${judge.ownerName(st.uid)} with mode ${mode}, and you, ${
        judge.ownerName(judge.uid)
      }, may not read it: run as its owner, or pass --home <dir> (or set ATLAS_HOME) for a home of your own`,
    );
  }
}

/** Refuse (ERR_NO_IDENTITY, exit 6) a home without a key, before a command creates anything in it. */
export async function requireIdentity(paths: HomePaths): Promise<void> {
  if (!(await statOrNull(paths.keyFile))) {
    throw new AtlasError("ERR_NO_IDENTITY", `no identity in ${paths.home}: run \`atlas id init\` first`);
  }
}

class Judge {
  constructor(readonly home: string, readonly uid: number) {}

  async check(path: string, o: { stickyOk?: boolean; ownerOnly?: boolean }): Promise<void> {
    const st = await statOrNull(path);
    if (!st) return;
    if (st.uid !== this.uid && st.uid !== 0) {
      throw this.refuse(`${path} is owned by another user (uid ${st.uid})`, `chown ${this.userName()} ${path}`);
    }
    if (o.ownerOnly || (st.mode & 0o022) === 0) return;
    if (o.stickyOk && st.isDirectory() && (st.mode & 0o1000) !== 0 && st.uid === 0) return;
    throw this.refuse(`${path} is writable by group or others`, `chmod go-w ${path}`);
  }

  refuse(problem: string, fix: string): AtlasError {
    return new AtlasError("ERR_HOME_INSECURE", `home ${this.home} is not safe: ${problem}: run \`${fix}\``);
  }

  /** `uid 0 (root)`-style owner text: the name when the system knows it. */
  ownerName(uid: number): string {
    const name = uid === 0 ? "root" : uid === processUid() ? this.userName() : null;
    return name ? `${name} (uid ${uid})` : `uid ${uid}`;
  }

  /** What to tell chown: the user's name when it is this process's user, else the uid. */
  userName(): string {
    if (this.uid !== processUid()) return String(this.uid);
    try {
      return userInfo().username;
    } catch {
      return String(this.uid);
    }
  }
}

/**
 * The directories above the home, nearest first: its lexical parents (whoever can write one can
 * swap the entry leading to the home) and, if symlinks are involved, the real ones too.
 */
async function dirsAbove(home: string): Promise<string[]> {
  const lexical = chain(dirname(home));
  let existing = home;
  while (!(await statOrNull(existing)) && dirname(existing) !== existing) existing = dirname(existing);
  const real = await realpath(existing).catch(() => existing);
  const realDirs = existing === home ? chain(dirname(real)) : chain(real);
  return [...new Set([...lexical, ...realDirs])];
}

/** `p` and every directory above it, up to the root. */
function chain(p: string): string[] {
  const out = [p];
  while (dirname(p) !== p) out.push(p = dirname(p));
  return out;
}

/** stat (following symlinks), or null when nothing is there. */
async function statOrNull(path: string): Promise<Stats | null> {
  try {
    return await stat(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return null;
    throw new AtlasError("ERR_IO", `cannot check ${path}: ${(e as Error).message}`, { cause: e });
  }
}
