import { quiche, type QuicheConfig } from "./native.ts";
import type { TransportOptions } from "./options.ts";

export const ALPN = "atlas/1";

/** PEM key + self-signed certificate of this node (docs/protocol.md#transport). */
export interface TlsIdentity {
  keyPem: string;
  certPem: string;
}

const enc = new TextEncoder();

/**
 * A quiche config for one role. Both roles present the node certificate and request the peer's
 * (mutual TLS); no CA is consulted — `verifyAllowFail` lets the self-signed chain through and the
 * handshake layer checks the key itself (docs/transport.md, "Traps in the quiche binding").
 */
export function makeQuicheConfig(id: TlsIdentity, o: TransportOptions): QuicheConfig {
  const c = quiche.Config.withBoringSslCtx(
    true,
    true,
    null,
    [enc.encode(id.keyPem)],
    [enc.encode(id.certPem)],
    "ed25519",
  );
  c.setApplicationProtos([ALPN]);
  c.grease(false);
  c.setMaxIdleTimeout(o.idleTimeoutMs);
  c.setMaxRecvUdpPayloadSize(Math.max(o.maxDatagramSize, 1500));
  c.setMaxSendUdpPayloadSize(o.maxDatagramSize);
  c.setInitialMaxData(o.initialConnWindow);
  c.setInitialMaxStreamDataBidiLocal(o.initialStreamWindow);
  c.setInitialMaxStreamDataBidiRemote(o.initialStreamWindow);
  c.setInitialMaxStreamDataUni(0);
  c.setInitialMaxStreamsBidi(o.maxStreamsPerConn);
  c.setInitialMaxStreamsUni(0);
  c.setMaxConnectionWindow(o.maxConnWindow);
  c.setMaxStreamWindow(o.maxStreamWindow);
  c.setDisableActiveMigration(true);
  if (o.datagrams) c.enableDgram(true, 1024, 1024);
  return c;
}
