/**
 * A node's identity: its ed25519 key, node ID and TLS certificate, and the files under the
 * home that hold them (docs/architecture.md#home-directory, docs/protocol.md#nodes-and-identities). The key file is refused when group/others can access it,
 * as ssh does, because anyone who reads it can impersonate the node.
 */
import { chmod, lstat, mkdir, readFile, stat } from "node:fs/promises";
import { AtlasError } from "../errors.ts";
import type { HomePaths } from "../config/paths.ts";
import { atomicWrite } from "../util/fs.ts";
import { derToPem, makeSelfSignedCert } from "./cert.ts";
import { generateSeed, pkcs8PemToSeed, publicKeyFromSeed, seedToPkcs8Pem, signEd25519 } from "./keys.ts";
import { NODE_ID_PREFIX, nodeIdFromPublicKey } from "./node-id.ts";
import { defaultProfile, loadProfile, type Profile, saveProfile, validateName } from "./profile.ts";

export class Identity {
  readonly nodeId: string;
  readonly publicKey: Uint8Array;
  readonly #seed: Uint8Array;
  #certDer: Uint8Array | undefined;

  constructor(seed: Uint8Array) {
    this.#seed = Uint8Array.from(seed);
    this.publicKey = publicKeyFromSeed(this.#seed);
    this.nodeId = nodeIdFromPublicKey(this.publicKey);
  }

  /** Built on first use: commands that never open QUIC need not pay for signing it. */
  get certDer(): Uint8Array {
    this.#certDer ??= makeSelfSignedCert(this.#seed);
    return this.#certDer;
  }

  get certPem(): string {
    return derToPem(this.certDer, "CERTIFICATE");
  }

  get keyPem(): string {
    return seedToPkcs8Pem(this.#seed);
  }

  sign(msg: Uint8Array): Uint8Array {
    return signEd25519(this.#seed, msg);
  }
}

export function identityFromSeed(seed: Uint8Array): Identity {
  return new Identity(seed);
}

const defaultName = (nodeId: string) => "agent-" + nodeId.slice(NODE_ID_PREFIX.length, NODE_ID_PREFIX.length + 6);

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw ioError(`cannot access ${path}`, e);
  }
}

function ioError(what: string, e: unknown): AtlasError {
  return new AtlasError("ERR_IO", `${what}: ${(e as Error).message}`, { cause: e });
}

export async function initIdentity(paths: HomePaths, opts: { force?: boolean; name?: string } = {}): Promise<Identity> {
  const name = opts.name === undefined ? undefined : validateName(opts.name);
  if (!opts.force && (await exists(paths.keyFile))) {
    throw new AtlasError("ERR_USAGE", `identity already exists at ${paths.keyFile} (use --force to replace it)`);
  }

  // A replaced identity keeps the card the operator wrote, but not the operator binding: that
  // binding names the old node ID. A broken old profile is dropped, since --force asked for a fresh start.
  let oldProfile: Profile = defaultProfile();
  let oldDefaultName: string | undefined;
  if (opts.force) {
    oldProfile = await loadProfile(paths).catch(() => defaultProfile());
    oldDefaultName = await loadIdentity(paths).then((id) => defaultName(id.nodeId), () => undefined);
  }

  const id = identityFromSeed(generateSeed());
  try {
    // mkdir's mode only applies to new directories (and umask), so chmod to be sure.
    await mkdir(paths.keysDir, { recursive: true, mode: 0o700 });
    await chmod(paths.keysDir, 0o700);
    await mkdir(paths.stateDir, { recursive: true, mode: 0o700 });
    await atomicWrite(paths.keyFile, id.keyPem, 0o600);
    await chmod(paths.keyFile, 0o600);
  } catch (e) {
    throw ioError(`cannot write identity to ${paths.home}`, e);
  }

  const keepName = oldProfile.name !== "" && oldProfile.name !== oldDefaultName;
  const profile: Profile = {
    name: name ?? (keepName ? oldProfile.name : defaultName(id.nodeId)),
    bio: oldProfile.bio,
    skills: oldProfile.skills,
  };
  if (oldProfile.wallet !== undefined) profile.wallet = oldProfile.wallet;
  await saveProfile(paths, profile);
  return id;
}

export async function loadIdentity(paths: HomePaths): Promise<Identity> {
  const file = paths.keyFile;
  let mode: number;
  try {
    mode = (await stat(file)).mode;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") {
      throw new AtlasError("ERR_NO_IDENTITY", `no identity in ${paths.home}: run \`atlas id init\` first`);
    }
    throw ioError(`cannot read key file ${file}`, e);
  }
  if ((mode & 0o077) !== 0) {
    throw new AtlasError(
      "ERR_KEY_PERMISSIONS",
      `key file ${file} is accessible by group or others: run \`chmod 600 ${file}\``,
    );
  }
  let pem: string;
  try {
    pem = await readFile(file, "utf8");
  } catch (e) {
    throw ioError(`cannot read key file ${file}`, e);
  }
  try {
    return identityFromSeed(pkcs8PemToSeed(pem));
  } catch (e) {
    const why = e instanceof AtlasError ? e.message : String(e);
    throw new AtlasError("ERR_IO", `key file ${file} is malformed: ${why}`, { cause: e });
  }
}
