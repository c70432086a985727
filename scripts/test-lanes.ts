/**
 * The test suite's lanes, one list each, so `npm run test:unit|test:e2e|test:nat` and the lane
 * test agree:
 * - unit: in-process and fast (≤ 20 s on 2 cores): codecs, identity, config, store, handshake,
 *   limits, generated docs, layering. No daemons, no namespaces.
 * - nat: the network-namespace lab (root, nftables, coturn); minutes.
 * - e2e: everything else — real CLI processes, daemons, relays and bootstrap nodes on 127.0.0.1,
 *   and the in-process integration suites.
 * `npm test` runs all three in one `node --test` (plus lint, typecheck and the build).
 *
 *   node --import tsx scripts/test-lanes.ts <unit|e2e|nat> [--list]
 */
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

export const UNIT: readonly string[] = [
  "wire",
  "wire-property",
  "identity",
  "config",
  "lockfile",
  "cert",
  "rate-limit",
  "store",
  "handshake",
  "home-check",
  "relay-limits",
  "read-budget",
  "errors-doc",
  "version",
  "layers",
  "lanes",
  "spinner",
];

export const NAT: readonly string[] = ["nat", "nat-lab", "nat-punch", "netcheck", "tcp-lab"];

/** Every test file, by its name without `.test.ts`. */
export function allTests(): string[] {
  return readdirSync(`${ROOT}/test`).filter((f) => f.endsWith(".test.ts")).map((f) => f.slice(0, -8)).sort();
}

export function lane(name: string | undefined): readonly string[] {
  if (name === "unit") return UNIT;
  if (name === "nat") return NAT;
  if (name === "e2e") return allTests().filter((t) => !UNIT.includes(t) && !NAT.includes(t));
  throw new Error(`unknown lane ${name}: unit, e2e or nat`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [name, flag] = process.argv.slice(2);
  let files: string[];
  try {
    files = lane(name).map((t) => `test/${t}.test.ts`);
  } catch (e) {
    console.error(`error: ${(e as Error).message}`);
    process.exit(2);
  }
  if (flag === "--list") {
    console.log(files.join("\n"));
    process.exit(0);
  }
  // Two files at a time: the unit lane is CPU-bound and these machines have two cores.
  const args = ["--import", "tsx", "--test", "--test-concurrency=2", "--test-reporter=spec", ...files];
  const r = spawnSync(process.execPath, args, { cwd: ROOT, stdio: "inherit" });
  process.exit(r.status ?? 1);
}
