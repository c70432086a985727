import { bodyOfMessageJson } from "../daemon/message-json.ts";
import type { MessageView } from "../daemon/shapes.ts";

/**
 * A received message: the `message` shape of docs/cli.md with `body` parsed, plus `body_json`,
 * the body's JSON text exactly as sent (where JSON.parse would round a big integer).
 */
export interface Message extends MessageView {
  body_json: string;
}

/** A MESSAGE line (as pushed by `subscribe`) as a Message. */
export function toMessage(json: string): Message {
  return { ...(JSON.parse(json) as MessageView), body_json: bodyOfMessageJson(json) };
}
