/**
 * `atlas devnet up` / `devnet down` (issue 14) as a user runs them: real detached processes on
 * 127.0.0.1, ready within 10 s with every daemon discoverable by the others, and nothing left
 * running after `down`.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { cleanupHomes, runAtlas, tmpHome } from "./helpers/cli.ts";
import { validate } from "../src/daemon/schema.ts";
import { DEVNET_DOWN, DEVNET_UP } from "../src/daemon/shapes.ts";

interface Node {
  name: string;
  role: string;
  home: string;
  node_id: string;
  address: string;
  pid: number;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

const started: number[] = [];
after(async () => {
  for (const pid of started.filter(alive)) process.kill(pid, "SIGKILL");
  await cleanupHomes();
});

describe("a devnet of three daemons", { timeout: 60_000 }, () => {
  let dir: string;
  let nodes: Node[];

  test("devnet up --nodes 3 starts a bootstrap node, a relay and three daemons within 10 s", async () => {
    dir = join(await tmpHome("atlas-devnet-test-"), "net");
    const r = await runAtlas(["devnet", "up", "--nodes", "3", "--dir", dir, "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const up = JSON.parse(r.stdout);
    assert.deepEqual(validate(DEVNET_UP, up), [], "the documented shape (src/daemon/shapes.ts)");
    nodes = up.nodes;
    started.push(...nodes.map((n) => n.pid));
    assert.deepEqual(nodes.map((n) => [n.name, n.role]), [
      ["bootstrap", "bootstrap"],
      ["relay", "relay"],
      ["node1", "daemon"],
      ["node2", "daemon"],
      ["node3", "daemon"],
    ]);
    assert.ok(up.ready_ms < 10_000, `ready in ${up.ready_ms} ms`);
    for (const n of nodes) {
      assert.equal(n.home, join(dir, n.name));
      assert.match(n.address, /^127\.0\.0\.1:\d+$/);
      assert.ok(alive(n.pid), `${n.name} (pid ${n.pid}) is not running`);
    }
    assert.equal(up.try, `atlas --home ${join(dir, "node1")} net ping ${nodes[4]!.node_id} --count 3`);
  });

  test("every daemon finds the other two through the bootstrap node", async () => {
    const daemons = nodes.filter((n) => n.role === "daemon");
    for (const d of daemons) {
      const r = await runAtlas(["net", "discover", "--json"], { home: d.home });
      assert.equal(r.code, 0, r.stderr);
      const found = JSON.parse(r.stdout).peers.map((p: { node_id: string }) => p.node_id).sort();
      assert.deepEqual(found, daemons.filter((x) => x !== d).map((x) => x.node_id).sort(), d.name);
    }
  });

  test("the printed line to try pings the last daemon from the first", async () => {
    const r = await runAtlas(["net", "ping", nodes[4]!.node_id, "--count", "1", "--json"], { home: nodes[2]!.home });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).received, 1);
  });

  test("a second devnet up in the same directory is refused while the first runs", async () => {
    const r = await runAtlas(["devnet", "up", "--nodes", "1", "--dir", dir]);
    assert.equal(r.code, 2);
    assert.equal(
      r.stderr,
      `error: a devnet is already running in ${dir}: stop it with \`atlas devnet down --dir ${dir}\`\n`,
    );
  });

  test("devnet down stops every process and removes the directory", async () => {
    const r = await runAtlas(["devnet", "down", "--dir", dir]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `Devnet down: 5 processes stopped; ${dir} removed\n`);
    assert.deepEqual(nodes.filter((n) => alive(n.pid)).map((n) => n.name), []);
    assert.equal(existsSync(dir), false);
  });
});

test("devnet up prints the nodes, the line to try and the line to stop", async () => {
  const dir = join(await tmpHome("atlas-devnet-test-"), "one");
  const r = await runAtlas(["devnet", "up", "--nodes", "1", "--dir", dir]);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split("\n");
  for (const m of r.stdout.matchAll(/ (\d+) {2}\//g)) started.push(Number(m[1]));
  assert.match(
    lines[0]!,
    /^Devnet up in \d+\.\d s: 1 daemon, a relay and a bootstrap node on 127\.0\.0\.1, every daemon registered with both$/,
  );
  assert.match(lines[1]!, /^NAME {7}ROLE {7}NODE ID {14}ADDRESS {10}PID +HOME$/);
  assert.match(lines[2]!, /^bootstrap {2}bootstrap {2}atlas_[0-9a-f]{12}… {2}127\.0\.0\.1:\d+ +\d+ +\S+\/bootstrap$/);
  assert.match(lines[3]!, /^relay {6}relay {6}atlas_[0-9a-f]{12}…/);
  assert.match(lines[4]!, /^node1 {6}daemon {5}atlas_[0-9a-f]{12}…/);
  assert.match(lines[5]!, new RegExp(`^Try  : atlas --home ${dir}/node1 net ping atlas_[0-9a-f]{64} --count 3$`));
  assert.equal(lines[6], `Stop : atlas devnet down --dir ${dir}`);
  assert.equal(lines.length, 7);
  const down = await runAtlas(["devnet", "down", "--dir", dir, "--json"]);
  assert.equal(down.code, 0, down.stderr);
  assert.equal(JSON.parse(down.stdout).stopped, 3);
  assert.deepEqual(validate(DEVNET_DOWN, JSON.parse(down.stdout)), []);
});

test("devnet down where no devnet runs exits 1 with one line (ERR_NOT_RUNNING)", async () => {
  const dir = await tmpHome("atlas-devnet-test-");
  const r = await runAtlas(["devnet", "down", "--dir", dir]);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, `error: no devnet in ${dir} (no devnet.json)\n`);
  const j = await runAtlas(["--json", "devnet", "down", "--dir", dir]);
  assert.equal(JSON.parse(j.stderr).error.code, "ERR_NOT_RUNNING");
});
