/**
 * A stored message as one line of JSON in the MESSAGE shape (src/daemon/shapes.ts): `body` is the
 * stored JSON text itself, spliced in verbatim with insignificant whitespace removed, so nothing is
 * re-serialised and big integers keep every digit. `net inbox --json` prints it and `subscribe`
 * pushes it.
 */
import { compactJson } from "../net/messaging.ts";
import type { InboxRow } from "../store/index.ts";
import { isJsonText } from "../wire/json-text.ts";

export function messageJson(r: InboxRow): string {
  const head = JSON.stringify({
    seq: r.rowid,
    id: r.id,
    from: r.from_id,
    to: r.to_id,
    timestamp: r.timestamp,
    reply_to: r.reply_to,
    topic: r.topic,
  });
  const body = isJsonText(r.body) ? compactJson(r.body) : JSON.stringify(r.body);
  return `${head.slice(0, -1)},"body":${body},"received_at":${r.received_at}}`;
}

/**
 * The body of a MESSAGE line as its JSON text, cut out of the line (between its `"body":` and
 * `,"received_at":` keys, which cannot occur unescaped inside the string fields before and after
 * it): exact where JSON.parse would round big integers.
 */
export function bodyOfMessageJson(json: string): string {
  return json.slice(json.indexOf(',"body":') + 8, json.lastIndexOf(',"received_at":'));
}
