#!/usr/bin/env node
// Entry point of the `atlas` binary. Heavy modules (QUIC, libSQL) load lazily inside commands.
import { main } from "./src/cli/main.ts";

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
