/**
 * Atlas as a library (README.md#library): `Atlas.attach()` to the home's running daemon, or
 * `Atlas.start()` to run the node in this process; then send, request, reply, messages(),
 * events(), peers(), discover(), ping(), status(). Objects have the shapes of docs/cli.md.
 */
export {
  Atlas,
  type AttachOptions,
  type Inbox,
  type MessagesOptions,
  type RequestOptions,
  type SendOptions,
  type StartOptions,
  type Status,
} from "./api/atlas.ts";
export type { Message } from "./api/message.ts";
export { AtlasError, Exit } from "./errors.ts";
export type {
  DeliveryView,
  DiscoverView,
  MessageView,
  PeerView,
  PingView,
  SessionEventView,
  SessionView,
} from "./daemon/shapes.ts";
