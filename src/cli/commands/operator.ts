import { SPINNER_FRAME_MS } from "../../config/durations.ts";
import type { AnyCommand } from "../options.ts";
import type { Ctx } from "../context.ts";
import { AtlasError } from "../../errors.ts";

type MakeCtx = (cmd: AnyCommand) => Ctx;

/** Labels of the operator output, padded to one column (README.md#commands output shapes). */
const WIDTH = 8;

/**
 * `atlas id auth-farcaster` · `id link-farcaster` · `id unlink-farcaster` (docs/protocol.md#operator-binding, README.md#commands): the
 * operator binding. Registered on the existing `id` command. Everything heavy (the auth relay
 * client, viem, the QR code renderer) is imported inside the actions.
 *
 * Output: human mode prints `Approve  : <url>` (plus a QR code when stdout is a terminal) and,
 * once approved, `Operator` / `Custody` / `Expires`. With --json, stdout carries only the final
 * object {fid, username, custody_address, expires_at (unix s, null = never), approval_url}; the
 * approval URL is also written to stderr as `Approve  : <url>` so that a human (or a wrapper) can
 * act on it while the command waits. The waiting spinner goes to stderr, only on a terminal.
 */
export function registerOperator(idCommand: AnyCommand, ctxOf: MakeCtx): void {
  idCommand
    .command("auth-farcaster")
    .description(
      "bind a Farcaster account as this node's operator by approving in a Farcaster app (Sign In With Farcaster)",
    )
    .option("--auth-relay <url>", "Farcaster auth relay", "https://relay.farcaster.xyz")
    .option("--domain <domain>", "SIWE domain shown to the operator", "atlas.local")
    .option("--siwe-uri <uri>", "SIWE URI shown to the operator", "https://atlas.local/operator-auth")
    .option("--timeout-secs <n>", "how long to wait for the approval", "180")
    .option("--poll-interval-ms <n>", "how often to ask the relay", "1000")
    .option("--valid-days <n>", "lifetime of the binding", "365")
    .action(async (o, cmd) => {
      const ctx = ctxOf(cmd);
      const timeoutSecs = num("--timeout-secs", o.timeoutSecs);
      const pollIntervalMs = num("--poll-interval-ms", o.pollIntervalMs);
      const validDays = num("--valid-days", o.validDays);
      const { loadIdentity } = await import("../../identity/identity.ts");
      const ident = await loadIdentity(ctx.paths);
      const { loadProfile, saveProfile } = await import("../../identity/profile.ts");
      await loadProfile(ctx.paths); // a profile we could not save to fails now, not after the approval
      const { authFarcaster } = await import("../../operator/auth-relay.ts");

      const spinner = startSpinner(timeoutSecs);
      let result: Awaited<ReturnType<typeof authFarcaster>>;
      try {
        result = await authFarcaster({
          nodeId: ident.nodeId,
          relayUrl: o.authRelay,
          domain: o.domain,
          siweUri: o.siweUri,
          timeoutSecs,
          pollIntervalMs,
          validDays,
          onChannel: async ({ url }) => {
            if (ctx.json) process.stderr.write(`${"Approve".padEnd(WIDTH)} : ${url}\n`);
            else {
              ctx.out.fields([["Approve", url]], WIDTH);
              if (process.stdout.isTTY) process.stdout.write(await qrCode(url));
            }
            spinner.start();
          },
        });
      } finally {
        spinner.stop();
      }

      const p = await loadProfile(ctx.paths); // re-read: it may have been edited while we waited
      await saveProfile(ctx.paths, { ...p, operator: result.operator });
      const op = result.operator;
      if (ctx.json) {
        ctx.out.data({
          fid: op.fid,
          username: op.username,
          custody_address: op.custody_address,
          expires_at: result.expiresAt,
          approval_url: result.approvalUrl,
        });
      } else printBinding(ctx, op, result.expiresAt);
    });

  idCommand
    .command("link-farcaster")
    .description("bind a Farcaster account from a Sign In With Farcaster message and its custody signature")
    .requiredOption("--message-file <file>", "the signed SIWE message ('-' for stdin)")
    .requiredOption("--signature <hex>", "the custody address's EIP-191 signature (0x…)")
    .option("--fid <n>", "the account's fid (must match the message's farcaster://fid/ resource)")
    .option("--username <name>", "the account's username (the message does not carry it)")
    .action(async (o, cmd) => {
      const ctx = ctxOf(cmd);
      const { loadIdentity } = await import("../../identity/identity.ts");
      const ident = await loadIdentity(ctx.paths);
      const { loadProfile, saveProfile } = await import("../../identity/profile.ts");
      const p = await loadProfile(ctx.paths);
      const signature = parseSignature(o.signature);
      const text = await readMessage(o.messageFile);
      const r = await verifyLink({
        text,
        signature,
        nodeId: ident.nodeId,
        fid: o.fid,
        username: o.username,
        current: p.operator,
      });
      await saveProfile(ctx.paths, { ...p, operator: r.operator });
      const op = r.operator;
      if (ctx.json) {
        ctx.out.data({
          fid: op.fid,
          username: op.username,
          custody_address: op.custody_address,
          expires_at: r.expiresAt,
          approval_url: null,
        });
      } else printBinding(ctx, op, r.expiresAt);
    });

  idCommand
    .command("unlink-farcaster")
    .description("remove this node's operator binding")
    .action(async (_o, cmd) => {
      const ctx = ctxOf(cmd);
      const { loadIdentity } = await import("../../identity/identity.ts");
      await loadIdentity(ctx.paths);
      const { loadProfile, saveProfile } = await import("../../identity/profile.ts");
      const p = await loadProfile(ctx.paths);
      const removed = p.operator !== undefined;
      if (removed) {
        const { operator: _gone, ...rest } = p;
        await saveProfile(ctx.paths, rest);
      }
      if (ctx.json) ctx.out.data({ operator: null, removed });
      else ctx.out.fields([["Operator", "-"]], WIDTH);
    });
}

type OperatorInfo = import("../../identity/profile.ts").OperatorInfo;

function printBinding(ctx: Ctx, op: OperatorInfo, expiresAt: number | null): void {
  ctx.out.fields(
    [
      ["Operator", `@${op.username} (fid ${op.fid})`],
      ["Custody", op.custody_address],
      ["Expires", expiresAt === null ? "never" : new Date(expiresAt * 1000).toISOString()],
    ],
    WIDTH,
  );
}

function num(flag: string, v: string): number {
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n) || n <= 0) {
    throw new AtlasError("ERR_USAGE", `invalid ${flag} ${JSON.stringify(v)}: expected a positive number`);
  }
  return n;
}

function parseSignature(v: string): string {
  const hex = v.trim();
  const m = /^(0x)?([0-9a-fA-F]{130})$/.exec(hex);
  if (!m) throw new AtlasError("ERR_USAGE", "invalid --signature: expected 0x followed by 65 bytes of hex (r, s, v)");
  return "0x" + m[2]!;
}

async function readMessage(file: string): Promise<string> {
  const { readFile } = await import("node:fs/promises");
  try {
    if (file === "-") {
      const chunks: Buffer[] = [];
      for await (const c of process.stdin) chunks.push(c as Buffer);
      return Buffer.concat(chunks).toString("utf8");
    }
    return await readFile(file, "utf8");
  } catch (e) {
    throw new AtlasError("ERR_USAGE", `cannot read --message-file ${file}: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Check a hand-supplied binding: the fid comes from the message's `farcaster://fid/<fid>`
 * resource, the custody address is the message's address, the username comes from --username
 * (or from the current binding of the same fid). Editors and shells often add a trailing newline
 * (or CRLF) to a file: when the exact text does not verify, its normalised form is tried too.
 */
async function verifyLink(
  a: { text: string; signature: string; nodeId: string; fid?: string; username?: string; current?: OperatorInfo },
): Promise<{ operator: OperatorInfo; expiresAt: number | null }> {
  const { tryParseBinding, fidsInResources } = await import("../../operator/siwe.ts");
  const { verifyBindingOffline } = await import("../../operator/verify.ts");
  const usage = (m: string) => new AtlasError("ERR_USAGE", m);

  let wantFid: number | undefined;
  if (a.fid !== undefined) {
    if (!/^[1-9][0-9]{0,15}$/.test(a.fid.trim()) || !Number.isSafeInteger(Number(a.fid))) {
      throw usage(`invalid --fid ${JSON.stringify(a.fid)}: expected a positive integer`);
    }
    wantFid = Number(a.fid);
  }

  const candidates = [a.text];
  const trimmed = a.text.replace(/\s+$/, "");
  if (trimmed !== a.text) candidates.push(trimmed);
  const lf = trimmed.replace(/\r\n/g, "\n");
  if (lf !== trimmed) candidates.push(lf);

  let lastReason = "";
  for (const message of candidates) {
    const parsed = tryParseBinding(message);
    if (!parsed.ok) {
      lastReason = `malformed SIWE message: ${parsed.reason}`;
      continue;
    }
    const fids = [...new Set(fidsInResources(parsed.value.resources))];
    if (fids.length === 0) throw usage("binding does not verify: the message names no farcaster://fid/<fid> resource");
    if (wantFid !== undefined && !fids.includes(wantFid)) {
      throw usage(
        `--fid ${wantFid} disagrees with the message, which names ${
          fids.map((f) => `farcaster://fid/${f}`).join(", ")
        }`,
      );
    }
    const fid = wantFid ?? fids[0]!;
    const username = pickUsername(a.username, a.current, fid);
    const operator: OperatorInfo = {
      fid,
      username,
      custody_address: parsed.value.address,
      message,
      signature: a.signature,
    };
    const v = verifyBindingOffline(operator, a.nodeId, Math.floor(Date.now() / 1000));
    if (v.ok) return { operator, expiresAt: v.expiresAt };
    lastReason = v.reason;
  }
  throw usage(`binding does not verify: ${lastReason}`);
}

function pickUsername(given: string | undefined, current: OperatorInfo | undefined, fid: number): string {
  if (given === undefined) {
    if (current && current.fid === fid) return current.username;
    throw new AtlasError("ERR_USAGE", "--username is required: a SIWE message does not carry the account's username");
  }
  const u = given.trim().replace(/^@/, "");
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(u)) {
    throw new AtlasError(
      "ERR_USAGE",
      `invalid --username ${JSON.stringify(given)}: letters, digits, '.', '_' and '-', at most 64`,
    );
  }
  return u;
}

/**
 * The URL as a QR code of Unicode half blocks (two module rows per text line, light modules drawn,
 * so it scans on dark and light terminals alike), with a 2-module quiet zone. The encoder is the
 * one qrcode-terminal vendors; its own renderer (lib/main.js) uses legacy octal escapes, which the
 * strict-mode single-executable bundle cannot include.
 */
async function qrCode(text: string): Promise<string> {
  try {
    // @ts-ignore qrcode-terminal ships no type declarations
    const mod = await import("qrcode-terminal/vendor/QRCode/index.js");
    type QR = {
      addData(t: string): void;
      make(): void;
      getModuleCount(): number;
      isDark(r: number, c: number): boolean;
    };
    const QRCode = (mod.default ?? mod) as new (type: number, level: number) => QR;
    const qr = new QRCode(-1, 1 /* error correction L: the smallest code */);
    qr.addData(text);
    qr.make();
    const n = qr.getModuleCount();
    const q = 2;
    const light = (r: number, c: number) => r < 0 || c < 0 || r >= n || c >= n || !qr.isDark(r, c);
    let out = "";
    for (let r = -q; r < n + q; r += 2) {
      for (let c = -q; c < n + q; c++) {
        const top = light(r, c);
        const bottom = r + 1 >= n + q ? true : light(r + 1, c);
        out += top && bottom ? "\u2588" : top ? "\u2580" : bottom ? "\u2584" : " ";
      }
      out += "\n";
    }
    return out;
  } catch {
    return ""; // the URL is printed anyway
  }
}

/** A spinner with a countdown on stderr, only when stderr is a terminal (tests and logs stay clean). */
function startSpinner(timeoutSecs: number): { start(): void; stop(): void } {
  let timer: ReturnType<typeof setInterval> | undefined;
  const frames = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
  return {
    start() {
      if (!process.stderr.isTTY || timer) return;
      const deadline = Date.now() + timeoutSecs * 1000;
      let i = 0;
      const draw = () => {
        const left = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
        const mmss = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`;
        process.stderr.write(
          `\r\x1b[K${frames[i++ % frames.length]} waiting for approval in your Farcaster app (${mmss} left)`,
        );
      };
      draw();
      timer = setInterval(draw, SPINNER_FRAME_MS);
      timer.unref?.();
    },
    stop() {
      if (!timer) return;
      clearInterval(timer);
      timer = undefined;
      process.stderr.write("\r\x1b[K");
    },
  };
}
