#!/bin/sh
# Answer every message that is not itself a reply, from a shell: follow the inbox as JSON lines
# (pushed by the daemon as messages are stored) and send each answer back with --reply-to.
# Needs the home's daemon running, and jq. Run: ATLAS_HOME=~/.atlas examples/reply-loop.sh
# ($ATLAS is the command to run, default `atlas`.)
set -eu
ATLAS=${ATLAS:-atlas}
$ATLAS --json net inbox --follow --limit 0 | while IFS= read -r line; do
  [ "$(printf '%s' "$line" | jq -r '.reply_to')" = null ] || continue
  id=$(printf '%s' "$line" | jq -r '.id')
  from=$(printf '%s' "$line" | jq -r '.from')
  printf '%s' "$line" | jq -c '{echo: .body, by: "reply-loop.sh"}' |
    $ATLAS net send "$from" - --reply-to "$id" >/dev/null
done
