/**
 * What each command prints: its JSON shape (src/daemon/shapes.ts), how (one document, or NDJSON
 * for a stream) and a sample of its human output. docs/cli.md is generated from this table
 * (`npm run docs:cli`), and test/cli-json.test.ts runs the commands and checks their `--json`
 * output against these shapes, so the table, the doc and the output cannot drift apart.
 */
import * as S from "../daemon/shapes.ts";
import type { Spec } from "../daemon/schema.ts";

/**
 * - `document`: one JSON value on stdout (an object; an array for a list command);
 * - `list`: one JSON array of the shape (an empty list is `[]`);
 * - `stream`: NDJSON, one object of the shape per line, as things happen or are read.
 */
export type OutputKind = "document" | "list" | "stream";

export interface CommandContract {
  command: string;
  kind: OutputKind;
  shape: Spec;
  /** A sample of the human output (IDs shortened as printed, times illustrative). */
  human: string;
}

const ID = "atlas_3f9a1c2e4b5d…";
const FULL = "atlas_3f9a1c2e4b5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7";

export const CONTRACT: readonly CommandContract[] = [
  { command: "--version", kind: "document", shape: S.VERSION_SHAPE, human: "atlas 0.1.0 (commit 0123456789ab)" },
  {
    command: "id init",
    kind: "document",
    shape: S.IDENTITY,
    human: `Node ID : ${FULL}\nName    : alpha\nKey     : /home/me/.atlas/keys/node-key.pem`,
  },
  {
    command: "id show",
    kind: "document",
    shape: S.IDENTITY,
    human:
      `Node ID  : ${FULL}\nName     : alpha\nBio      : -\nSkills   : search, summarise\nOperator : -\nKey      : /home/me/.atlas/keys/node-key.pem`,
  },
  ...["set-name", "set-bio", "add-skill", "remove-skill"].map((c) => ({
    command: `id ${c}`,
    kind: "document" as const,
    shape: S.PROFILE,
    human: c === "set-name" ? "Name : alpha" : c === "set-bio" ? "Bio : finds papers" : "Skills : search, summarise",
  })),
  {
    command: "id auth-farcaster",
    kind: "document",
    shape: S.BINDING,
    human: "Operator : @alice (fid 1234)\nCustody  : 0x8ba1…\nExpires  : 2027-01-01T00:00:00.000Z",
  },
  {
    command: "id link-farcaster",
    kind: "document",
    shape: S.BINDING,
    human: "Operator : @alice (fid 1234)\nCustody  : 0x8ba1…\nExpires  : 2027-01-01T00:00:00.000Z",
  },
  { command: "id unlink-farcaster", kind: "document", shape: S.UNLINKED, human: "Operator : -" },
  { command: "config show", kind: "document", shape: S.CONFIG, human: '[network]\nhost = "0.0.0.0"\nport = 4433\n…' },
  { command: "config get", kind: "document", shape: S.CONFIG_GET, human: "5" },
  { command: "config set", kind: "document", shape: S.CONFIG_VALUE, human: "transport.dial_timeout = 1" },
  ...["daemon", "net listen", "relay", "bootstrap"].map((c) => ({
    command: c,
    kind: "stream" as const,
    shape: S.LISTENING,
    human: `Listening on 127.0.0.1:4433 as ${FULL}`,
  })),
  { command: "daemon stop", kind: "document", shape: S.STOPPED, human: "Stopped daemon (pid 4242)" },
  {
    command: "status",
    kind: "document",
    shape: S.STATUS,
    human: [
      `Node ID  : ${FULL}`,
      "Daemon   : running (pid 4242, up 63 s)",
      "Listen   : 0.0.0.0:4433 (advertised: 192.168.1.5:4433), batched UDP I/O",
      "Public   : unknown: none (this process runs no STUN check; peers see the listen address)",
      "Sessions : 1",
      "Relays   : none",
      "Outbox   : 0 queued",
      "Hub      : farcaster.verify=auto; not asked yet",
      `  ${ID}  beta  [unknown via direct]  outbound  age 12s  rtt 0.41 ms  pinned`,
    ].join("\n"),
  },
  {
    command: "net connect",
    kind: "document",
    shape: S.SESSION,
    human: `Connected to ${FULL}\nbeta [unknown via direct]`,
  },
  {
    command: "net ping",
    kind: "document",
    shape: S.PING,
    human: [
      `Peer : ${ID}`,
      "Path : direct",
      "Ping : 2026-12-02T13:00:00.000Z",
      "Pong : 2026-12-02T13:00:00.000Z",
      "RTT  : 0.52 ms",
      "min/median/max 0.52/0.52/0.52 ms, 1 sent, 1 received",
    ].join("\n"),
  },
  {
    command: "net disconnect",
    kind: "document",
    shape: S.DISCONNECT,
    human: `Disconnected from ${FULL} (1 session)\n(or: No session with ${FULL}: nothing to disconnect)`,
  },
  {
    command: "net ban",
    kind: "document",
    shape: S.BAN,
    human: `Banned ${FULL} until 2026-12-02T14:00:00Z (in 1h)`,
  },
  { command: "net unban", kind: "document", shape: S.BAN, human: `Unbanned ${FULL}` },
  {
    command: "net peers",
    kind: "list",
    shape: S.PEER,
    human: [
      "NODE ID              NAME  ADDRESS          TRUST               OPERATOR  LAST SEEN  LAST FAILURE  BAN",
      `${ID}  beta  127.0.0.1:47002  unknown via direct  -         3s ago     -             -`,
    ].join("\n"),
  },
  {
    command: "net send",
    kind: "document",
    shape: S.DELIVERY,
    human: [
      "With a daemon:",
      "Queued   : 0193a1b2-…",
      `Target   : ${ID}`,
      "Without one:",
      `Sent to  : ${ID} [unknown via direct]`,
      "Msg ID   : 0193a1b2-…",
      "Ack      : delivered",
    ].join("\n"),
  },
  {
    command: "net reply",
    kind: "document",
    shape: S.DELIVERY,
    human: "Queued   : msg_0193a1b2-…\nTarget   : " + ID +
      "\n(without a daemon: Sent to / Msg ID / Ack, as `net send`)",
  },
  {
    command: "net request",
    kind: "document",
    shape: S.REQUEST,
    human: [
      "Request  : msg_0193a1b2-…",
      "Reply    : msg_0193a1b3-…",
      `From     : ${ID}`,
      "RTT      : 2.1 ms",
      '{"answer":42}',
    ].join("\n"),
  },
  {
    command: "net inbox",
    kind: "stream",
    shape: S.MESSAGE,
    human: `2026-12-02T13:00:00Z  from ${ID}  topic demo  0193a1b2-…\n  {"hello":"world"}`,
  },
  {
    command: "net outbox",
    kind: "document",
    shape: S.OUTBOX,
    human:
      "Outbox is empty.\n\nRecent deliveries:\nMSG ID      TARGET  STATUS     ATTEMPTS  PATH    FINISHED  DETAIL\n0193a1b2-…  " +
      `${ID}  delivered  1         direct  5s ago    direct send`,
  },
  {
    command: "net discover",
    kind: "document",
    shape: S.DISCOVER,
    human: [
      "NODE ID              NAME   ADDRESS          SKILLS  OPERATOR  LAST SEEN",
      `${ID}  gamma  127.0.0.1:47003  search  -         2s ago`,
    ].join("\n"),
  },
  {
    command: "netcheck",
    kind: "document",
    shape: S.NETCHECK,
    human: [
      "UDP       : yes (4 of 4 answered)",
      "Public    : 203.0.113.7:41641 (behind a NAT)",
      "Mapping   : endpoint-independent: 198.51.100.1:3478 and 198.51.100.2:3478 saw the same 203.0.113.7:41641: hole punching can work",
      "STUN      : 198.51.100.1:3478 saw 203.0.113.7:41641 in 4.1 ms",
      "          : 198.51.100.2:3478 saw 203.0.113.7:41641 in 4.3 ms",
      `Relays    : ${ID}@198.51.100.1:4433 reachable: UDP round trip 3.2 ms (connect and handshake 8 ms); TCP 198.51.100.1:4433 TLS in 9.1 ms`,
      "Bootstrap : 198.51.100.2:4433 reachable: UDP round trip 3.5 ms (connect and handshake 8 ms); TCP 198.51.100.2:4433 TLS in 9.4 ms",
      "Hub       : https://snap.farcaster.xyz:3381 reachable: HTTP 200 in 84.2 ms",
      "Took      : 14 ms",
    ].join("\n"),
  },
  {
    command: "devnet up",
    kind: "document",
    shape: S.DEVNET_UP,
    human: [
      "Devnet up in 1.0 s: 3 daemons, a relay and a bootstrap node on 127.0.0.1, every daemon registered with both",
      "NAME       ROLE       NODE ID              ADDRESS          PID    HOME",
      `bootstrap  bootstrap  ${ID}  127.0.0.1:40001  12001  /tmp/atlas-devnet-me/bootstrap`,
      "…",
      `Try  : atlas --home /tmp/atlas-devnet-me/node1 net ping ${FULL} --count 3`,
      "Stop : atlas devnet down --dir /tmp/atlas-devnet-me",
    ].join("\n"),
  },
  {
    command: "devnet down",
    kind: "document",
    shape: S.DEVNET_DOWN,
    human: "Devnet down: 5 processes stopped; /tmp/atlas-devnet-me removed",
  },
];

/** Errors of every command: one line on stderr, or this document with --json. */
export const ERROR_CONTRACT: CommandContract = {
  command: "error",
  kind: "document",
  shape: S.ERROR,
  human: "error: no answer from 127.0.0.1:47001 within 5 s",
};
