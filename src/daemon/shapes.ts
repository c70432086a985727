/**
 * The one JSON shape of each object Atlas prints or answers (docs/cli.md is generated from these;
 * test/cli-json.test.ts checks every command's `--json` output against them). Conventions
 * (docs/decisions.md, "One JSON shape per object"): snake_case names; times in Unix seconds;
 * node IDs in full; a field with no value is null, never left out (except where a shape says
 * when); the same object has the same shape and field names in every command.
 */
import { type Infer, s } from "./schema.ts";

const nodeId = (doc: string) => s.string(`${doc} (\`atlas_\` + 64 hex)`);
const unixTime = (doc: string) => s.integer(`${doc} (Unix seconds)`);

export const OPERATOR = s.shape("operator", {
  username: s.string("Farcaster username the peer's card names"),
  fid: s.nullable(s.integer("its Farcaster ID, when known")),
  status: s.oneOf(["verified", "unconfirmed"], "`verified` (checked by this node or a bootstrap node) or not"),
  reason: s.nullable(s.string("why it is unconfirmed; null when verified")),
}, "a human operator bound to an agent (shown, never trusted)");

const TRUST = s.oneOf(["bootstrap", "unknown", "verified", "relay"], "trust level");
const PATH = s.oneOf(["direct", "relay"], "how the session reaches the peer");

export const SESSION = s.shape("session", {
  node_id: nodeId("the peer"),
  name: s.string("the peer's name from its card"),
  trust: TRUST,
  path: PATH,
  relay: s.nullable(s.string("the relay carrying it (`atlas_<id>@host:port`), when path is relay")),
  punched: s.boolean("a direct path opened by hole punching"),
  address: s.string("the peer's address as this node sees it"),
  operator: s.nullable(s.as(OPERATOR, "the peer's operator")),
}, "a verified session with a peer");

export const PING = s.shape("ping_result", {
  ...SESSION.fields,
  ping_ts: s.nullable(unixTime("the first Pong's echo of our Ping time")),
  pong_ts: s.nullable(unixTime("the peer's clock in the first Pong")),
  rtt_ms: s.array(s.nullable(s.number("round-trip time in ms; null for a lost Ping")), "one entry per Ping sent"),
  sent: s.integer("Pings sent"),
  received: s.integer("Pongs received"),
  min_ms: s.nullable(s.number("fastest round trip")),
  median_ms: s.nullable(s.number("median round trip")),
  max_ms: s.nullable(s.number("slowest round trip")),
  path_changes: s.array(
    s.object({
      before_ping: s.integer("index of the Ping the change came before"),
      path: PATH,
      relay: s.nullable(s.string("the relay, when path is relay")),
      punched: s.boolean("a hole-punched direct path"),
    }, "a path change"),
    "each time the session in use changed path",
  ),
  error: s.nullable(s.object({
    code: s.string("error code name (docs/errors.md)"),
    message: s.string("one line"),
    exit: s.integer("exit code"),
  }, "why no Pong came back (also printed as the error document on stderr)")),
}, "the outcome of `net ping`");

export const DISCONNECT = s.shape("disconnect_result", {
  node_id: s.nullable(nodeId("the peer; null for an address no session uses")),
  sessions: s.integer("live sessions closed; 0 when there was none (nothing is dialled)"),
}, "the outcome of `net disconnect`");

export const BAN = s.shape("ban_result", {
  node_id: nodeId("the peer"),
  ban_until: s.nullable(unixTime("end of the ban; null after unban")),
  disconnected: s.integer("live sessions closed by the ban"),
}, "the outcome of `net ban` / `net unban`");

export const DELIVERY = s.shape("send_result", {
  msg_id: s.string("the message ID (UUIDv7)"),
  target: s.string("the target as stored: node ID, `atlas_<id>@host:port` or host:port"),
  queued: s.boolean("true: handed to the daemon's outbox; false: delivered by this command"),
  node_id: s.nullable(nodeId("who acknowledged it; null while queued")),
  name: s.nullable(s.string("their name; null while queued")),
  trust: s.nullable(s.as(TRUST, "their trust level; null while queued")),
  path: s.nullable(s.as(PATH, "the path it went over; null while queued")),
  relay: s.nullable(s.string("the relay, when path is relay")),
  ack: s.nullable(s.string("the MessageAck status; null while queued")),
}, "the outcome of `net send`: queued with a daemon, acknowledged without one");

export const MESSAGE = s.shape("message", {
  seq: s.integer("inbox row number: a resume cursor for `--after`"),
  id: s.string("message ID"),
  from: nodeId("sender"),
  to: nodeId("addressee (this node)"),
  timestamp: unixTime("sender's time"),
  reply_to: s.nullable(s.string("ID of the message this answers")),
  topic: s.nullable(s.string("topic")),
  body: s.any("the JSON body itself, verbatim (big integers keep every digit)"),
  received_at: unixTime("when this node stored it"),
}, "a received message");

export const SESSION_EVENT = s.shape("session_event", {
  event: s.oneOf(
    ["session_up", "session_down", "path_changed"],
    "a peer's first session opened, its last one closed, or the path to it changed",
  ),
  node_id: nodeId("the peer"),
  session: s.nullable(s.as(SESSION, "the live session after the event; null after session_down")),
  reason: s.nullable(s.string("why the last session closed (session_down); else null")),
  at: unixTime("when it happened"),
}, "a session event pushed by the daemon's `subscribe` stream");

export const REQUEST = s.shape("request_result", {
  request: s.as(DELIVERY, "the request as queued"),
  reply: s.as(MESSAGE, "the first received message whose reply_to is the request's msg_id"),
  rtt_ms: s.number("from queueing the request to storing the reply"),
}, "`net request`: the request sent and the reply it got");

export const PEER = s.shape("peer", {
  node_id: nodeId("the peer"),
  public_key: s.nullable(s.string("ed25519 public key, hex")),
  address: s.nullable(s.string("last address that worked")),
  public_address: s.nullable(s.string("public address it reported or was seen at")),
  relays: s.array(s.string("relay"), "its home relays"),
  name: s.nullable(s.string("name from its card")),
  bio: s.nullable(s.string("bio from its card")),
  skills: s.array(s.string("skill"), "skills from its card"),
  operator: s.nullable(s.as(OPERATOR, "its verified operator")),
  trust: TRUST,
  first_seen: unixTime("first contact"),
  last_seen: unixTime("latest contact"),
  last_failure: s.nullable(s.string("kind of the latest failed dial")),
  last_failure_at: s.nullable(unixTime("when it failed")),
  ban_until: s.nullable(unixTime("end of a ban")),
  banned: s.boolean("banned now"),
  violations: s.integer("rate-limit violations counted"),
  record_seq: s.nullable(s.integer("seq of the latest signed bootstrap record seen")),
  last_path: s.nullable(s.as(PATH, "path of the latest session")),
  last_relay: s.nullable(s.string("relay of the latest session")),
  last_punched: s.boolean("the latest session was hole-punched"),
}, "a known peer (a row of the peer store)");

export const DISCOVERED = s.shape("discovered_peer", {
  node_id: nodeId("the agent"),
  name: s.string("name"),
  address: s.string("address it registered"),
  public_address: s.nullable(s.string("public address")),
  relays: s.array(s.string("relay"), "its home relays"),
  skills: s.array(s.string("skill"), "skills"),
  operator: s.nullable(s.as(OPERATOR, "operator the bootstrap node verified")),
  last_seen: unixTime("latest registration"),
  record: s.oneOf(["verified", "none"], "`verified`: a signed record checked out; `none`: the bootstrap's word"),
  record_seq: s.nullable(s.integer("the signed record's seq")),
  bootstraps: s.array(s.string("bootstrap node"), "the bootstrap nodes that returned it"),
}, "an agent a bootstrap node listed");

export const ERROR_BODY = s.object({
  code: s.string("error code name (docs/errors.md)"),
  message: s.string("one line"),
}, "an error");

export const DISCOVER = s.shape("discover_result", {
  peers: s.array(DISCOVERED, "agents found, merged across bootstrap nodes"),
  bootstraps: s.array(
    s.object({
      bootstrap: s.string("the bootstrap node asked"),
      ok: s.boolean("it answered"),
      peers: s.nullable(s.integer("agents it returned")),
      rejected: s.nullable(s.integer("records refused (bad key or signature)")),
      error: s.nullable(s.as(ERROR_BODY, "why it did not answer")),
    }, "one bootstrap node's answer"),
    "what each bootstrap node answered",
  ),
}, "the outcome of `net discover`");

export const ERROR = s.shape("error", {
  error: ERROR_BODY,
}, "an error, printed on stderr (the exit code follows docs/errors.md)");

export const OUTBOX = s.shape("outbox", {
  queued: s.array(
    s.object({
      id: s.string("message ID"),
      target: s.string("target as given"),
      topic: s.nullable(s.string("topic")),
      reply_to: s.nullable(s.string("reply_to")),
      body_bytes: s.integer("body size in bytes"),
      status: s.oneOf(["queued", "delivering"], "state"),
      attempts: s.integer("attempts so far"),
      created_at: unixTime("queued at"),
      next_attempt_at: unixTime("next attempt"),
      expires_at: unixTime("given up after"),
    }, "a message waiting for delivery"),
    "the queue",
  ),
  deliveries: s.array(
    s.object({
      msg_id: s.string("message ID"),
      target: s.string("target"),
      status: s.oneOf(["delivered", "failed", "expired"], "outcome"),
      attempts: s.integer("attempts made"),
      path: s.nullable(s.string("path it went over")),
      finished_at: unixTime("when"),
      detail: s.nullable(s.string("what happened")),
    }, "a delivery outcome"),
    "latest outcomes, newest first",
  ),
}, "`net outbox`: the queue and the latest outcomes");

const whenRunning = <const T extends Parameters<typeof s.optional>[0]>(spec: T) => s.optional(spec);

export const STATUS = s.shape("status", {
  running: s.boolean("a daemon runs for this home"),
  node_id: nodeId("this node"),
  home: s.string("the home directory"),
  name: whenRunning(s.string("this node's name")),
  pid: whenRunning(s.integer("the daemon's process ID")),
  uptime_s: whenRunning(s.integer("seconds since it started")),
  listen_address: whenRunning(s.string("bound address")),
  listen_addrs: whenRunning(s.array(s.string("address"), "addresses advertised")),
  datagram_io: whenRunning(s.oneOf(
    ["batched", "dgram"],
    "how the UDP socket moves datagrams: `batched` (the atlas_udp addon, Linux) or `dgram` (node:dgram: ATLAS_UDP=dgram, or no addon)",
  )),
  public_address: whenRunning(s.nullable(s.string("public address found by STUN"))),
  public_address_source: whenRunning(s.string("where public_address came from, or why unknown")),
  sessions: whenRunning(s.array(
    s.object({
      ...SESSION.fields,
      direction: s.oneOf(["inbound", "outbound"], "who dialled"),
      age_s: s.integer("seconds since it opened"),
      rtt_ms: s.nullable(s.number("latest round-trip time")),
      pinned: s.boolean("kept open (`net connect` through the daemon)"),
    }, "a live session"),
    "live sessions",
  )),
  outbox_depth: whenRunning(s.integer("messages queued")),
  metrics_address: whenRunning(
    s.nullable(s.string("`host:port` of the Prometheus endpoint (`metrics.listen`); null when off")),
  ),
  farcaster: whenRunning(s.object({
    verify: s.string("farcaster.verify"),
    hub: s.nullable(s.object({
      url: s.string("hub URL"),
      reachable: s.nullable(s.boolean("null until asked")),
      last_error: s.nullable(s.string("its latest error")),
    }, "the Farcaster hub")),
  }, "operator verification")),
  relays: whenRunning(s.array(
    s.object({
      relay: s.string("relay as configured"),
      node_id: s.nullable(nodeId("the relay")),
      registered: s.boolean("registered there now"),
      last_ok: s.nullable(unixTime("latest successful registration")),
      last_error: s.nullable(s.string("latest error")),
      attempts: s.integer("registration attempts"),
      leg: s.nullable(s.oneOf(["udp", "tcp"], "QUIC over UDP, or the TCP leg (TLS on TCP); null without a session")),
    }, "presence at one relay"),
    "presence at the configured relays",
  )),
  relay_pipes: whenRunning(s.object({
    open: s.integer("relayed connections open"),
    datagram_drops: s.integer("DATAGRAMs dropped"),
    unknown_session: s.integer("DATAGRAMs for no known pipe"),
  }, "pipes through relays this node is an end of")),
  relay_transport: whenRunning(s.object({
    mode: s.oneOf(["auto", "udp", "tcp"], "transport.relay_transport"),
    udp: s.oneOf(["unknown", "ok", "blocked"], "whether relays and bootstrap nodes answered over UDP lately"),
    tcp_sessions: s.integer("sessions with relays and bootstrap nodes over the TCP leg"),
    udp_probes: s.integer("UDP dials tried while on the TCP leg"),
    last_probe: s.nullable(unixTime("latest of them")),
  }, "how this agent reaches relays and bootstrap nodes")),
  hole_punch: whenRunning(s.array(
    s.object({
      node_id: nodeId("the peer"),
      state: s.string("direct, trying or failed"),
      attempts: s.integer("attempts"),
      last_error: s.nullable(s.string("latest error")),
      direct_since: s.nullable(unixTime("direct since")),
    }, "hole punching with one peer"),
    "hole punching per peer",
  )),
  subscribers: whenRunning(s.integer("control-socket clients following the `subscribe` stream")),
  relay_server: whenRunning(s.nullable(s.object({
    registered: s.integer("agents registered"),
    pipes: s.integer("pipes open"),
    capacity: s.integer("pipe capacity"),
    forwarded_packets: s.integer("packets forwarded"),
    forwarded_bytes: s.integer("bytes forwarded"),
    dropped_rate_limit: s.integer("packets dropped by rate limits"),
    dropped_queue_full: s.integer("packets dropped, queue full"),
    pipes_refused: s.integer("pairings refused"),
    refused: s.map(s.integer("count"), "refusals by RelayError code name"),
    pipes_closed_unused: s.integer("pipes closed unused"),
  }, "this node's own relay service"))),
  tcp_leg: whenRunning(s.object({
    port: s.integer("TCP port of the TLS listener"),
    connections: s.integer("TCP connections open"),
    accepted: s.integer("TLS handshakes completed"),
    refused_limit: s.integer(
      "connections refused: transport.relay_tcp_connections, max_connections or security.handshake_limit",
    ),
    refused_per_ip: s.integer("connections refused: transport.relay_tcp_connections_per_ip"),
    refused_rate: s.integer("connections refused: security.handshakes_per_ip_per_minute"),
    handshake_timeouts: s.integer("TLS handshakes not done within transport.relay_tcp_handshake_timeout"),
    bad_frames: s.integer("legs closed for a frame of 0 or over 1500 bytes"),
    idle_closed: s.integer("legs closed after transport.relay_tcp_idle_timeout without a byte"),
  }, "this relay's or bootstrap node's TCP leg")),
}, "`status`: this home's node; the fields after `home` are there only while a daemon runs");

export const LISTENING = s.shape("listening", {
  event: s.oneOf(["listening"], "event name"),
  node_id: nodeId("this node"),
  address: s.string("bound address"),
  listen_addrs: s.array(s.string("address"), "addresses advertised"),
  pid: s.integer("process ID"),
}, "first line of a running daemon, relay or bootstrap node");

export const IDENTITY = s.shape("identity", {
  node_id: nodeId("this node"),
  public_key: s.string("ed25519 public key, hex"),
  name: s.string("name on its card"),
  bio: s.string("bio on its card"),
  skills: s.array(s.string("skill"), "skills on its card"),
  operator: s.nullable(s.object({
    username: s.string("Farcaster username"),
    fid: s.integer("Farcaster ID"),
  }, "the operator binding on its card")),
  key_file: s.string("path of the private key"),
  home: s.string("the home directory"),
}, "this node's identity and card (`id init`, `id show`)");

export const PROFILE = s.shape("profile", {
  name: s.string("name"),
  bio: s.string("bio"),
  skills: s.array(s.string("skill"), "skills"),
}, "the card fields `id set-name|set-bio|set-skills` edit");

export const VERSION_SHAPE = s.shape("version", {
  version: s.string("Atlas version"),
  commit: s.string("source commit it was built from, or `unknown`"),
}, "`atlas --version`");

export const STOPPED = s.shape("daemon_stopped", {
  stopped: s.boolean("always true"),
  pid: s.integer("the daemon's process ID"),
}, "`daemon stop`");

export const CONFIG_VALUE = s.shape("config_value", {
  key: s.string("dotted key"),
  value: s.any("its value"),
}, "`config set`");

export const BINDING = s.shape("operator_binding", {
  fid: s.integer("Farcaster ID"),
  username: s.string("Farcaster username"),
  custody_address: s.string("the custody address that signed the binding"),
  expires_at: s.nullable(unixTime("when the binding expires")),
  approval_url: s.nullable(s.string("the approval URL shown (`auth-farcaster`); null for `link-farcaster`")),
}, "the operator binding `id auth-farcaster` / `id link-farcaster` stored on this node's card");

export const UNLINKED = s.shape("operator_unlinked", {
  operator: s.nullable(s.as(BINDING, "always null")),
  removed: s.boolean("a binding was there and is gone"),
}, "`id unlink-farcaster`");

export const CONFIG = s.any("the whole config: every section and key of src/config/defaults.ts");
export const CONFIG_GET = s.any("the key's value: a string, number, boolean, list or section");

export type OperatorView = Infer<typeof OPERATOR>;
export type SessionView = Infer<typeof SESSION>;
export type PingView = Infer<typeof PING>;
export type DisconnectView = Infer<typeof DISCONNECT>;
export type BanView = Infer<typeof BAN>;
export type DeliveryView = Infer<typeof DELIVERY>;
export type PeerView = Infer<typeof PEER>;
export type DiscoverView = Infer<typeof DISCOVER>;
export type DiscoveredView = Infer<typeof DISCOVERED>;
export type StatusView = Infer<typeof STATUS>;
export type OutboxView = Infer<typeof OUTBOX>;
export type IdentityView = Infer<typeof IDENTITY>;
export type MessageView = Infer<typeof MESSAGE>;
export type SessionEventView = Infer<typeof SESSION_EVENT>;
export type RequestView = Infer<typeof REQUEST>;

const NODE_PROBE = s.object({
  target: s.string("as configured: `host:port` or `atlas_<id>@host:port`"),
  ok: s.boolean("it answered: QUIC, the handshake against the pinned ID, then a Ping"),
  node_id: s.nullable(nodeId("the node that answered")),
  udp_rtt_ms: s.nullable(s.number("round trip of an Atlas Ping over the QUIC session (UDP)")),
  handshake_ms: s.nullable(s.number("QUIC connection plus the four-message handshake")),
  tcp: s.object({
    address: s.nullable(s.string("`host:port` of its TCP leg asked")),
    ok: s.boolean("TLS 1.3 answered with the pinned node's certificate"),
    tls_ms: s.nullable(s.number("TCP connect plus the TLS handshake")),
    error: s.nullable(s.string("why not")),
  }, "its TCP leg (TLS, no session)"),
  error: s.nullable(s.string("why it did not answer")),
}, "one relay or bootstrap node probed");

export const NETCHECK = s.shape("netcheck", {
  udp: s.nullable(s.boolean("something answered over UDP; false: all silent; null: nothing to ask")),
  public_address: s.nullable(s.string("the public address the first STUN answer saw")),
  behind_nat: s.nullable(s.boolean("false when the public address is one of this host's own")),
  mapping: s.oneOf(
    ["endpoint-independent", "endpoint-dependent", "unknown"],
    "two STUN servers at different addresses saw the same public address (independent) or not",
  ),
  mapping_reason: s.string("why the mapping is what it is, in words"),
  stun: s.array(
    s.object({
      server: s.string("STUN server `host:port`"),
      ok: s.boolean("it answered"),
      public_address: s.nullable(s.string("the address and port it saw us send from")),
      rtt_ms: s.nullable(s.number("round trip")),
      error: s.nullable(s.string("why it did not answer")),
    }, "one STUN server asked"),
    "every configured STUN server",
  ),
  relays: s.array(NODE_PROBE, "every configured relay"),
  bootstrap: s.array(NODE_PROBE, "every configured bootstrap node"),
  hub: s.nullable(s.object({
    url: s.string("the Farcaster hub this node would ask (farcaster.hub_url or the default)"),
    ok: s.boolean("it answered over HTTP(S), whatever the status"),
    http_status: s.nullable(s.integer("the status of its answer to GET /v1/info")),
    rtt_ms: s.nullable(s.number("round trip of that request")),
    error: s.nullable(s.string("why it did not answer")),
  }, 'the hub leg; null when farcaster.verify = "signature"')),
  reachable: s.boolean("anything at all answered (STUN, relays or bootstrap nodes, over UDP or TCP; not the hub)"),
  duration_ms: s.number("how long the check took"),
}, "`atlas netcheck`: what this host can reach, and what its NAT does");

const DEVNET_NODE = s.object({
  name: s.string("`bootstrap`, `relay` or `node<i>`"),
  role: s.oneOf(["bootstrap", "relay", "daemon"], "what the process runs"),
  home: s.string("its home directory"),
  node_id: nodeId("its node ID"),
  address: s.string("its QUIC address on 127.0.0.1"),
  pid: s.integer("its process ID"),
}, "one process of the devnet");

export const DEVNET_UP = s.shape("devnet_up", {
  dir: s.string("the devnet's directory (homes and devnet.json)"),
  started_at: unixTime("when it was started"),
  nodes: s.array(DEVNET_NODE, "the bootstrap node, the relay, then the daemons"),
  ready_ms: s.number("from the first spawn to every daemon registered"),
  try: s.string("a command to try: the first daemon pings the last by node ID"),
}, "`atlas devnet up`");

export const DEVNET_DOWN = s.shape("devnet_down", {
  dir: s.string("the devnet's directory"),
  stopped: s.integer("processes stopped"),
  killed: s.integer("of those, killed after the grace period"),
  pids: s.array(s.integer("process ID"), "the processes stopped"),
  removed: s.boolean("the directory was removed (false with --keep)"),
}, "`atlas devnet down`");

export type NetcheckView = Infer<typeof NETCHECK>;
export type DevnetUpView = Infer<typeof DEVNET_UP>;
export type DevnetDownView = Infer<typeof DEVNET_DOWN>;
