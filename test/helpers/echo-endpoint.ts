/**
 * A QUIC echo endpoint in a process of its own (for tests that need the peer in another
 * process): binds 127.0.0.1 port 0, prints the port on a line, echoes every stream, and exits
 * when its stdin closes.
 *   node --import tsx test/helpers/echo-endpoint.ts
 */
import { defaultConfig } from "../../src/config/defaults.ts";
import { identityFromSeed } from "../../src/identity/identity.ts";
import { generateSeed } from "../../src/identity/keys.ts";
import { QuicEndpoint } from "../../src/transport/endpoint.ts";
import { transportOptions } from "../../src/transport/options.ts";

const id = identityFromSeed(generateSeed());
const server = await QuicEndpoint.bind({
  ...transportOptions(defaultConfig()),
  host: "127.0.0.1",
  port: 0,
  tls: { keyPem: id.keyPem, certPem: id.certPem },
});
server.onConnection = (c) => {
  c.onStream = (st) =>
    void (async () => {
      for (let ch = await st.read(5000); ch !== null; ch = await st.read(5000)) await st.write(ch);
      await st.end();
    })().catch(() => st.abort(1));
};
process.stdout.write(`${server.local.port}\n`);
process.stdin.resume();
process.stdin.on("end", () => void server.close().then(() => process.exit(0)));
