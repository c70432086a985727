/**
 * A QUIC echo endpoint in a process of its own (for tests that need the peer in another
 * process): binds 127.0.0.1 port 0, prints the port on a line, echoes every stream, and exits
 * when its stdin closes.
 *   node --import tsx test/helpers/echo-endpoint.ts
 */
import { bindTestEndpoint, serveEcho } from "./endpoint.ts";

const server = await bindTestEndpoint();
serveEcho(server);
process.stdout.write(`${server.local.port}\n`);
process.stdin.resume();
process.stdin.on("end", () => void server.close().then(() => process.exit(0)));
