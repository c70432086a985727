/**
 * Benchmark server child (spawned by bench/run.ts with an IPC channel): one Atlas node, one TCP
 * server and one TLS 1.3 server on 127.0.0.1, all in this process, so the server side of every
 * figure runs on the same event loop the same way.
 *
 * Atlas request handler ("Message"):
 *   - topic "bench/bulk": answer an interim MessageAck without FIN, then read raw bytes from the
 *     same stream until FIN, count them and answer a final MessageAck (the client measures until it);
 *   - anything else: answer MessageAck at once.
 */
import { createServer as createTcpServer, type Socket } from "node:net";
import { createServer as createTlsServer } from "node:tls";
import { rm } from "node:fs/promises";
import type { QuicStream } from "../src/transport/stream.ts";
import { encodeFrame } from "../src/wire/frame.ts";
import type { WireMessage } from "../src/wire/messages.ts";
import { type ClientCmd, HOST, memUsage, MODE, N, type ServerReady, settleGc, startNode } from "./common.ts";

const send = (m: unknown) => process.send!(m);

const bn = await startNode("bench-server", true);
const { node } = bn;
let lastBulkBytes = -1;

node.handle("Message", async (_session, req: WireMessage, stream: QuicStream) => {
  if (req.type !== "Message") return null;
  const ack: WireMessage = { type: "MessageAck", msg_id: req.id, status: "received" };
  if (req.topic !== "bench/bulk") return ack;
  await stream.write(encodeFrame(ack)); // "go": the client starts raw bytes after this
  let n = 0;
  for (;;) {
    const chunk = await stream.read(30_000);
    if (chunk === null) break;
    n += chunk.length;
  }
  lastBulkBytes = n;
  return ack;
});

// ---- TCP / TLS ----

const tcpSockets = new Set<Socket>();

function serveSocket(sock: Socket): void {
  tcpSockets.add(sock);
  sock.on("close", () => tcpSockets.delete(sock));
  sock.on("error", () => {});
  if ("setNoDelay" in sock) sock.setNoDelay(true);
  let mode = -1;
  let pending: Buffer | null = null; // 'R' partial frame
  let bulk = 0;
  const ackPayload = Buffer.alloc(N.reqAckBytes, 0x61);
  const ack = Buffer.alloc(4 + ackPayload.length);
  ack.writeUInt32BE(ackPayload.length, 0);
  ackPayload.copy(ack, 4);
  sock.on("data", (d: Buffer) => {
    if (mode === -1) {
      mode = d[0]!;
      d = d.subarray(1);
      if (d.length === 0) return;
    }
    switch (mode) {
      case MODE.echo:
        sock.write(d);
        return;
      case MODE.bulk:
        bulk += d.length;
        return;
      case MODE.req: {
        let buf = pending ? Buffer.concat([pending, d]) : d;
        let acks = 0;
        while (buf.length >= 4) {
          const len = buf.readUInt32BE(0);
          if (buf.length < 4 + len) break;
          buf = buf.subarray(4 + len);
          acks++;
        }
        pending = buf.length > 0 ? Buffer.from(buf) : null;
        if (acks === 1) sock.write(ack);
        else if (acks > 1) sock.write(Buffer.concat(Array(acks).fill(ack)));
        return;
      }
      default:
        return; // idle
    }
  });
  sock.on("end", () => {
    if (mode === MODE.bulk) {
      const b = Buffer.alloc(8);
      b.writeBigUInt64BE(BigInt(bulk));
      sock.end(b);
    } else sock.end();
  });
}

const tcp = createTcpServer({ noDelay: true }, serveSocket);
// Same ed25519 certificate and key as the Atlas node; mutual TLS like Atlas (client certificate
// requested, self-signed accepted — the check of the key is the application's, as in Atlas).
const tls = createTlsServer(
  {
    key: bn.identity.keyPem,
    cert: bn.identity.certPem,
    minVersion: "TLSv1.3",
    requestCert: true,
    rejectUnauthorized: false,
  },
  serveSocket,
);
tls.on("tlsClientError", () => {});
await new Promise<void>((r) => tcp.listen(0, HOST, 1024, r));
await new Promise<void>((r) => tls.listen(0, HOST, 1024, r));

process.on("message", async (m: ClientCmd) => {
  switch (m.cmd) {
    case "mem":
      await settleGc();
      send({ id: m.id, mem: memUsage() });
      return;
    case "counts":
      send({
        id: m.id,
        sessions: node.allSessions().length,
        quic: node.endpoint.connectionCount,
        tcp: tcpSockets.size,
        retries: node.endpoint.stats.retries,
        withoutRetry: node.endpoint.stats.acceptedWithoutRetry ?? 0,
      });
      return;
    case "bulkBytes":
      send({ id: m.id, bytes: lastBulkBytes });
      lastBulkBytes = -1;
      return;
    case "stop":
      for (const s of tcpSockets) s.destroy();
      tcp.close();
      tls.close();
      await node.close();
      await bn.store.close();
      await rm(bn.dir, { recursive: true, force: true }).catch(() => {});
      send({ id: m.id, stopped: true });
      process.disconnect();
      // let --cpu-prof write its profile on a normal exit
      setTimeout(() => process.exit(0), 50);
      return;
  }
});

const ready: ServerReady = {
  type: "ready",
  atlasPort: node.endpoint.local.port,
  tcpPort: (tcp.address() as { port: number }).port,
  tlsPort: (tls.address() as { port: number }).port,
  nodeId: node.nodeId,
};
send(ready);
