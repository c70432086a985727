// An agent on the Atlas library: attach to this home's daemon, answer every request it receives.
// Run: ATLAS_HOME=~/.atlas node --import tsx examples/agent.ts   (or: deno run -A examples/agent.ts)
import { Atlas } from "atlas";

const atlas = await Atlas.attach({ home: process.env.ATLAS_HOME });
const inbox = await atlas.inbox(); // subscribed: every message stored from now on comes out
console.log(JSON.stringify({ ready: true, node_id: (await atlas.status()).node_id }));

for await (const m of inbox) {
  if (m.reply_to !== null) continue; // a reply to something we sent, not a request
  const question = m.body as { q?: string };
  await atlas.reply(m, { answer: `you asked: ${question.q ?? JSON.stringify(m.body)}`, seq: m.seq });
}
