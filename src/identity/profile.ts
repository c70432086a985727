/**
 * The agent card in state/profile.toml (docs/architecture.md#home-directory, docs/protocol.md#nodes-and-identities, docs/protocol.md#operator-binding): self-declared name, bio and skills,
 * plus an optional operator binding and wallet. Limits are those of the wire format (docs/protocol.md#messages),
 * enforced here so a profile we can save is always one we can send.
 */
import { readFile } from "node:fs/promises";
import { parse, stringify } from "smol-toml";
import { AtlasError } from "../errors.ts";
import type { HomePaths } from "../config/paths.ts";
import { atomicWrite } from "../util/fs.ts";
import { Limits } from "../wire/limits.ts";

/** The Farcaster operator binding (docs/protocol.md#operator-binding) is stored in the profile exactly as it travels. */
import type { OperatorInfo } from "../wire/messages.ts";
export type { OperatorInfo };

export interface Profile {
  name: string;
  bio: string;
  skills: string[];
  operator?: OperatorInfo;
  wallet?: string;
}

const SKILL_RE = /^[a-z0-9][a-z0-9._-]*$/;
// Names and bios end up on other people's terminals: no control characters (escape sequences).
const CONTROL_RE = /\p{Cc}/u;

const byteLength = (s: string) => new TextEncoder().encode(s).length;

export function validateName(s: string): string {
  const name = s.trim();
  if (name === "") throw new AtlasError("ERR_USAGE", "name must not be empty");
  if (CONTROL_RE.test(name)) throw new AtlasError("ERR_USAGE", "name must not contain control characters");
  const n = byteLength(name);
  if (n > Limits.NAME_BYTES) {
    throw new AtlasError("ERR_USAGE", `name is ${n} bytes long; the limit is ${Limits.NAME_BYTES} bytes`);
  }
  return name;
}

export function validateBio(s: string): string {
  const bio = s.trim();
  if (CONTROL_RE.test(bio)) throw new AtlasError("ERR_USAGE", "bio must not contain control characters");
  const n = byteLength(bio);
  if (n > Limits.BIO_BYTES) {
    throw new AtlasError("ERR_USAGE", `bio is ${n} bytes long; the limit is ${Limits.BIO_BYTES} bytes`);
  }
  return bio;
}

export function normalizeSkill(s: string): string {
  const skill = s.trim().toLowerCase();
  if (skill === "") throw new AtlasError("ERR_USAGE", "skill must not be empty");
  const n = byteLength(skill);
  if (n > Limits.SKILL_BYTES) {
    throw new AtlasError(
      "ERR_USAGE",
      `skill ${JSON.stringify(skill)} is ${n} bytes long; the limit is ${Limits.SKILL_BYTES} bytes`,
    );
  }
  if (!SKILL_RE.test(skill)) {
    throw new AtlasError(
      "ERR_USAGE",
      `invalid skill ${
        JSON.stringify(s)
      }: use lowercase letters, digits, '.', '_' and '-', starting with a letter or digit`,
    );
  }
  return skill;
}

/** Adding a skill already present is a no-op; the 33rd distinct skill is refused. */
export function addSkill(p: Profile, s: string): Profile {
  const skill = normalizeSkill(s);
  if (p.skills.includes(skill)) return { ...p, skills: [...p.skills] };
  if (p.skills.length >= Limits.SKILLS) {
    throw new AtlasError("ERR_USAGE", `too many skills: the limit is ${Limits.SKILLS}`);
  }
  return { ...p, skills: [...p.skills, skill] };
}

/** Removing a skill the profile does not have is an error, so typos do not pass silently. */
export function removeSkill(p: Profile, s: string): Profile {
  const skill = s.trim().toLowerCase();
  if (!p.skills.includes(skill)) throw new AtlasError("ERR_USAGE", `the profile has no skill ${JSON.stringify(skill)}`);
  return { ...p, skills: p.skills.filter((k) => k !== skill) };
}

export function defaultProfile(): Profile {
  return { name: "", bio: "", skills: [] };
}

// --- file I/O -------------------------------------------------------------------------------

const PROFILE_KEYS = new Set(["name", "bio", "skills", "operator", "wallet"]);
const OPERATOR_KEYS = ["fid", "username", "custody_address", "message", "signature"] as const;

export async function loadProfile(paths: HomePaths): Promise<Profile> {
  const file = paths.profileFile;
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return defaultProfile();
    throw new AtlasError("ERR_IO", `cannot read ${file}: ${(e as Error).message}`, { cause: e });
  }
  let doc: Record<string, unknown>;
  try {
    doc = parse(text) as Record<string, unknown>;
  } catch (e) {
    const first = String((e as Error).message).split("\n")[0];
    throw new AtlasError("ERR_CONFIG", `invalid TOML in ${file}: ${first}`, { cause: e });
  }
  return profileFromDoc(doc, file);
}

function profileFromDoc(doc: Record<string, unknown>, file: string): Profile {
  const bad = (key: string, why: string): never => {
    throw new AtlasError("ERR_CONFIG", `invalid ${key} in ${file}: ${why}`);
  };
  // ERR_USAGE from the validators becomes ERR_CONFIG naming the key and file.
  const check = <T>(key: string, f: () => T): T => {
    try {
      return f();
    } catch (e) {
      return bad(key, e instanceof AtlasError ? e.message : String(e));
    }
  };
  for (const k of Object.keys(doc)) if (!PROFILE_KEYS.has(k)) bad(k, "unknown key");

  const p = defaultProfile();
  if (doc.name !== undefined) {
    if (typeof doc.name !== "string") bad("name", "expected a string");
    const name = doc.name as string;
    p.name = name.trim() === "" ? "" : check("name", () => validateName(name));
  }
  if (doc.bio !== undefined) {
    if (typeof doc.bio !== "string") bad("bio", "expected a string");
    p.bio = check("bio", () => validateBio(doc.bio as string));
  }
  if (doc.skills !== undefined) {
    if (!Array.isArray(doc.skills)) bad("skills", "expected an array of strings");
    const skills = doc.skills as unknown[];
    for (const s of skills) {
      if (typeof s !== "string") bad("skills", "expected an array of strings");
      const skill = check("skills", () => normalizeSkill(s as string));
      if (!p.skills.includes(skill)) p.skills.push(skill);
    }
    if (p.skills.length > Limits.SKILLS) bad("skills", `${p.skills.length} entries; the limit is ${Limits.SKILLS}`);
  }
  if (doc.wallet !== undefined) {
    if (typeof doc.wallet !== "string") bad("wallet", "expected a string");
    p.wallet = doc.wallet as string;
  }
  if (doc.operator !== undefined) p.operator = operatorFromDoc(doc.operator, bad);
  return p;
}

function operatorFromDoc(v: unknown, bad: (key: string, why: string) => never): OperatorInfo {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return bad("operator", "expected a table");
  const t = v as Record<string, unknown>;
  for (const k of Object.keys(t)) {
    if (!(OPERATOR_KEYS as readonly string[]).includes(k)) bad(`operator.${k}`, "unknown key");
  }
  for (const k of OPERATOR_KEYS) if (t[k] === undefined) bad(`operator.${k}`, "missing");
  if (typeof t.fid !== "number" || !Number.isSafeInteger(t.fid) || t.fid < 0) {
    bad("operator.fid", "expected a non-negative integer");
  }
  for (const k of OPERATOR_KEYS.slice(1)) if (typeof t[k] !== "string") bad(`operator.${k}`, "expected a string");
  return {
    fid: t.fid as number,
    username: t.username as string,
    custody_address: t.custody_address as string,
    message: t.message as string,
    signature: t.signature as string,
  };
}

export async function saveProfile(paths: HomePaths, p: Profile): Promise<void> {
  // Validate before writing: a profile on disk must always load back.
  const doc: Record<string, unknown> = {
    name: p.name.trim() === "" ? "" : validateName(p.name),
    bio: validateBio(p.bio),
    skills: p.skills.reduce<Profile>((acc, s) => addSkill(acc, s), defaultProfile()).skills,
  };
  if (p.wallet !== undefined) doc.wallet = p.wallet;
  if (p.operator !== undefined) {
    const o = p.operator;
    doc.operator = {
      fid: o.fid,
      username: o.username,
      custody_address: o.custody_address,
      message: o.message,
      signature: o.signature,
    };
  }
  await atomicWrite(paths.profileFile, stringify(doc));
}
