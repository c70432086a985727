/**
 * A bare QUIC endpoint for transport tests: 127.0.0.1, any port unless given, a fresh identity,
 * the default transport options (any of them overridable), and an echo server to put on it.
 */
import { defaultConfig } from "../../src/config/defaults.ts";
import { identityFromSeed } from "../../src/identity/identity.ts";
import { generateSeed } from "../../src/identity/keys.ts";
import { type EndpointOptions, QuicEndpoint } from "../../src/transport/endpoint.ts";
import { transportOptions } from "../../src/transport/options.ts";

export function bindTestEndpoint(o: Partial<Omit<EndpointOptions, "tls">> = {}): Promise<QuicEndpoint> {
  const id = identityFromSeed(generateSeed());
  return QuicEndpoint.bind({
    ...transportOptions(defaultConfig()),
    host: "127.0.0.1",
    port: 0,
    ...o,
    tls: { keyPem: id.keyPem, certPem: id.certPem },
  });
}

/**
 * Echo every stream of every inbound connection: each chunk written back as it arrives, the end
 * once the peer's (a FIN written after the data, as docs/transport.md "Bare FINs" describes).
 */
export function serveEcho(ep: QuicEndpoint, readTimeoutMs = 5000): void {
  ep.onConnection = (c) => {
    c.onStream = (st) =>
      void (async () => {
        for (let ch = await st.read(readTimeoutMs); ch !== null; ch = await st.read(readTimeoutMs)) await st.write(ch);
        await st.end();
      })().catch(() => st.abort(1));
  };
}
