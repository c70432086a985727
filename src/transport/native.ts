/**
 * The raw sans-IO quiche binding shipped inside @matrixai/quic. We drive it from our own loop
 * (see docs/architecture.md): the package's high-level classes are ~100× slower and stall under
 * loss (docs/transport.md). Importing this module loads the native addon, so only code paths that really
 * open QUIC import it (lazily, from the CLI).
 */
export { quiche } from "@matrixai/quic/native/index.js";
export type {
  Config as QuicheConfig,
  Connection as QuicheConnection,
  ConnectionError as QuicheConnectionError,
  Host as HostPort,
} from "@matrixai/quic/native/index.js";
