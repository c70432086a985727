/**
 * The NAT lab itself (test/helpers/netns.ts): each router type really behaves as the NAT it claims to
 * be, checked with a NAT discovery tool we did not write — coturn's `turnutils_natdiscovery` (RFC 5780
 * mapping and filtering tests) from every agent against coturn's `turnserver` in the pub namespace,
 * listening on both 198.18.0.1 and 198.18.0.2 (CHANGE-REQUEST needs a second address). Root only,
 * and needs coturn; skipped with the reason otherwise — but fails if a router misbehaves.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  createNet,
  type NatKind,
  type Net,
  netnsUnavailable,
  PUB_BOOT1,
  PUB_BOOT2,
  ROUTERS,
  startStunServer,
  STUN_PORT,
} from "./helpers/netns.ts";

const has = (cmd: string) => spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;
const skip = netnsUnavailable() ??
  (has("turnserver") && has("turnutils_natdiscovery")
    ? null
    : "turnserver / turnutils_natdiscovery (Debian package coturn) are not installed; .ci/run installs coturn when run as root");

/** What RFC 5780 discovery must report behind each kind of router (turnutils_natdiscovery's words). */
const EXPECTED: Record<NatKind, { mapping: string; filtering: string }> = {
  "port-restricted": { mapping: "Endpoint Independent", filtering: "Address and Port Dependent" },
  symmetric: { mapping: "Address and Port Dependent", filtering: "Address and Port Dependent" },
  "full-cone": { mapping: "Endpoint Independent", filtering: "Endpoint Independent" },
  "address-restricted": { mapping: "Endpoint Independent", filtering: "Address Dependent" },
};

let net: Net | undefined;
let turn: ChildProcess | undefined;
let dir: string | undefined;
const procs = new Set<ChildProcess>();
after(() => {
  try {
    for (const p of procs) p.kill("SIGKILL");
    turn?.kill("SIGKILL");
  } finally {
    net?.destroy(); // also kills whatever still runs inside its namespaces
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
});

/** Run a command inside a namespace, bounded in time; resolves with its output whatever the exit. */
function runIn(ns: string, args: string[], timeoutMs: number): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn("ip", ["netns", "exec", ns, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    procs.add(p);
    let out = "";
    p.stdout.on("data", (d) => (out += d));
    p.stderr.on("data", (d) => (out += d));
    const t = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
    p.on("error", reject);
    p.on("close", (code) => {
      clearTimeout(t);
      procs.delete(p);
      resolve({ code, out });
    });
  });
}

type Discovery = { mapping: string | null; filtering: string | null; local: string[]; mapped: string[]; out: string };
function parse(out: string): Discovery {
  const one = (re: RegExp) => re.exec(out)?.[1] ?? null;
  const all = (re: RegExp) => [...out.matchAll(re)].map((m) => m[1]!);
  return {
    mapping: one(/NAT with (.+?) Mapping!/),
    filtering: one(/NAT with (.+?) Filtering!/),
    local: all(/Local addr: : \S+:(\d+)/g),
    mapped: all(/UDP reflexive addr: (\S+)/g),
    out,
  };
}

describe("NAT lab: each router behaves as the NAT it claims to be (RFC 5780, coturn)", {
  skip: skip ?? false,
  timeout: 90_000,
}, () => {
  before(async () => {
    net = createNet();
    dir = mkdtempSync(join(tmpdir(), "atlas-natlab-"));
    turn = await startStunServer(net, { pidfile: join(dir, "turnserver.pid"), alternate: true });
  });

  test("each lab router maps and filters as its NAT kind says: port-restricted, symmetric, full cone, address-restricted", async () => {
    // All four at once: the filtering tests wait for answers that must not come, so this saves time.
    const results = await Promise.all(ROUTERS.map(async (r) => {
      const { code, out } = await runIn(
        net!.ns[r.agentNs],
        ["turnutils_natdiscovery", "-m", "-f", "-p", String(STUN_PORT), PUB_BOOT1],
        45_000,
      );
      return { r, code, d: parse(out) };
    }));
    const table = results.map(({ r, d }) => ({
      router: r.name,
      kind: r.kind,
      agent: r.agent,
      mapping: d.mapping,
      filtering: d.filtering,
      mapped: [...new Set(d.mapped)].join(" "),
    }));
    console.log("NAT discovery (turnutils_natdiscovery -m -f against turnserver on %s/%s):", PUB_BOOT1, PUB_BOOT2);
    console.table(table);
    for (const { r, code, d } of results) {
      const ctx = `${r.name} (${r.kind}), turnutils_natdiscovery exit ${code}:\n${d.out}`;
      assert.equal(code, 0, ctx);
      assert.deepEqual({ mapping: d.mapping, filtering: d.filtering }, EXPECTED[r.kind], ctx);
      // Every reflexive address is the router's public one.
      assert.ok(d.mapped.length >= 2 && d.mapped.every((m) => m.startsWith(`${r.wan}:`)), ctx);
      if (r.kind !== "symmetric") {
        // The cones built here rely on masquerade keeping the port; check that it did.
        for (const m of d.mapped) assert.ok(d.local.includes(m.split(":")[1]!), `port not preserved: ${m}\n${ctx}`);
      }
    }
  });
});
