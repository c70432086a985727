/**
 * Diagnostic (not part of `npm run bench`): how many packets quiche makes of small writes on
 * several streams in one turn, against the same bytes on one stream. quiche 0.18 (the binding
 * @matrixai/quic ships) puts one STREAM frame in a packet outside its fuzzing builds, so eight
 * 100-byte answers on eight streams leave as eight packets, where one stream's 800 bytes is one:
 * the floor under Atlas's request rate with several requests in flight (bench/RESULTS.md item 13).
 *   node --import tsx bench/tools/frames-per-packet.ts [streams=8] [bytes=100]
 */
import { bindTestEndpoint } from "../../test/helpers/endpoint.ts";

const streams = Number(process.argv[2] ?? 8);
const bytes = Number(process.argv[3] ?? 100);
const server = await bindTestEndpoint();
server.onConnection = (c) => {
  c.onStream = (st) => void st.read(5000).catch(() => {});
};
const client = await bindTestEndpoint();
const conn = client.connect({ host: "127.0.0.1", port: server.local.port });
await conn.established;
const settle = () => new Promise((r) => setTimeout(r, 100)); // ACKs of the handshake and of the last round

/**
 * Packets one flush makes of `ids.length` writes handed to quiche together (straight to the
 * binding, so that no early flush of a long turn splits them), ACKs of earlier rounds settled.
 */
async function packetsFor(ids: number[]): Promise<number> {
  await settle();
  const before = conn.native.stats().sent;
  for (const id of ids) conn.native.streamSend(id, chunk, false);
  conn.flush();
  return conn.native.stats().sent - before;
}

const chunk = new Uint8Array(bytes).fill(0x61);
for (let round = 0; round < 3; round++) {
  const many = await packetsFor(Array.from({ length: streams }, () => conn.openStream().id));
  const one = await packetsFor(Array(streams).fill(conn.openStream().id));
  console.log(
    `round ${round}: ${streams} × ${bytes} bytes on ${streams} streams: ${many} packets; the same on one stream: ${one}`,
  );
}
await client.close();
await server.close();
