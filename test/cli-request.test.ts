/**
 * The CLI for scripts (README.md#commands): bodies from stdin and files, broken JSON refused,
 * `net request` waiting for the reply whose reply_to matches, `net reply` — real CLI processes and
 * real daemons on 127.0.0.1.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { openStore } from "../src/store/index.ts";
import { cleanupAll, daemonPair, initHome, runAtlas } from "./helpers/cli.ts";
import { waitFor } from "./helpers/wait.ts";

async function inboxOf(home: string) {
  const s = await openStore(join(home, "state", "peers.db"));
  try {
    return await s.inbox.list();
  } finally {
    await s.close();
  }
}

describe("net send, request and reply for scripts", () => {
  let a: { home: string; nodeId: string }; // requester, daemon
  let b: { home: string; nodeId: string }; // responder, daemon

  before(async () => {
    ({ a, b } = await daemonPair());
  });
  after(cleanupAll);

  test("net send - reads the body from stdin, verbatim", async () => {
    const r = await runAtlas(["--json", "net", "send", b.nodeId, "-"], {
      home: a.home,
      input: '{"from":"stdin","n":12345678901234567890}\n',
    });
    assert.equal(r.code, 0, r.stderr);
    const id = JSON.parse(r.stdout).msg_id;
    const m = await waitFor("the message at beta", async () => (await inboxOf(b.home)).find((x) => x.id === id));
    assert.equal(m.body, '{"from":"stdin","n":12345678901234567890}\n');
  });

  test("--body-file reads the body from a file", async () => {
    const f = join(a.home, "body.json");
    await writeFile(f, '["from","file"]');
    const r = await runAtlas(["--json", "net", "send", b.nodeId, "--body-file", f], { home: a.home });
    assert.equal(r.code, 0, r.stderr);
    const id = JSON.parse(r.stdout).msg_id;
    const m = await waitFor("the message at beta", async () => (await inboxOf(b.home)).find((x) => x.id === id));
    assert.equal(m.body, '["from","file"]');
  });

  test("a body that starts with { but does not parse is refused with exit 2", async () => {
    const r = await runAtlas(["net", "send", b.nodeId, '{"broken":'], { home: a.home });
    assert.equal(r.code, 2);
    assert.equal(
      r.stderr,
      "error: message body starts like JSON but does not parse: fix it, or pass --text to send it as a string\n",
    );
  });

  test("--text sends such a body as a JSON string", async () => {
    const r = await runAtlas(["--json", "net", "send", b.nodeId, "[not json", "--text"], { home: a.home });
    assert.equal(r.code, 0, r.stderr);
    const id = JSON.parse(r.stdout).msg_id;
    const m = await waitFor("the message at beta", async () => (await inboxOf(b.home)).find((x) => x.id === id));
    assert.equal(m.body, '"[not json"');
  });

  test("net request prints the reply whose reply_to matches, not another message", async () => {
    const req = runAtlas(["--json", "net", "request", b.nodeId, '{"q":"6*7"}', "--timeout", "20s"], { home: a.home });
    const asked = await waitFor(
      "the request at beta",
      async () => (await inboxOf(b.home)).find((x) => x.body === '{"q":"6*7"}'),
    );
    const other = await runAtlas(["net", "send", a.nodeId, '{"not":"the reply"}'], { home: b.home });
    assert.equal(other.code, 0, other.stderr);
    const rep = await runAtlas(["--json", "net", "reply", asked.id, '{"answer":42}'], { home: b.home });
    assert.equal(rep.code, 0, rep.stderr);
    const r = await req;
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.request.msg_id, asked.id);
    assert.equal(j.reply.reply_to, asked.id);
    assert.equal(j.reply.id, JSON.parse(rep.stdout).msg_id);
    assert.deepEqual(j.reply.body, { answer: 42 });
  });

  test("net request exits 5 when no reply comes within --timeout", async () => {
    const r = await runAtlas(["net", "request", b.nodeId, '"anyone?"', "--timeout", "1s"], { home: a.home });
    assert.equal(r.code, 5);
    assert.match(r.stderr, /^error: no reply to msg_[0-9a-f-]+ within 1 s\n$/);
  });

  test("net reply to a message not in the inbox exits 2", async () => {
    const r = await runAtlas(["net", "reply", "msg_0193a1b2-0000-7000-8000-000000000000", '"hi"'], { home: a.home });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /no message msg_0193a1b2-0000-7000-8000-000000000000 in this node's inbox/);
  });
});

test("net request without a daemon exits 1 with a hint to start one", async () => {
  const h = await initHome("lonely");
  const r = await runAtlas(["net", "request", "127.0.0.1:9", '"hi"'], { home: h.home });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /net request needs a daemon to receive the reply.*start one with `atlas daemon`/);
  await cleanupAll();
});
