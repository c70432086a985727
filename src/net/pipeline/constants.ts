/**
 * Pipelined requests' names and bounds (docs/protocol.md#pipelined-requests; docs/decisions.md,
 * "Several requests on one stream"). Their one timing is in config/durations.ts.
 */
import type { MsgTypeName } from "../../wire/messages.ts";

/** The feature both ends advertise in Hello/HelloAck `features` to pipeline requests. */
export const PIPELINE_FEATURE = "pipeline/1";

/**
 * Requests whose stream carries more than one request and one answer: the relay pipe (§11) and
 * the punch exchange (§11a). They always get a stream of their own; on a pipe they are refused.
 */
export const STREAM_OWNING_REQUESTS: ReadonlySet<MsgTypeName> = new Set<MsgTypeName>(["RelayConnect", "PunchOffer"]);

/**
 * Requests of one pipe a responder reads and hands to handlers before the oldest is answered: as
 * many as a sender's outbox keeps in flight (`outbox.window`, 32), so the inbox's group commit
 * takes them together as it did when each had a stream of its own (8 made the drain 10–15 %
 * slower: bench/RESULTS.md item 14). A stream per request allowed 50 at once (the stream limit).
 */
export const PIPE_READ_AHEAD = 32;

/** …and at most this many request bytes among them (a pipe of 4 MiB Messages is served one at a time). */
export const PIPE_READ_AHEAD_BYTES = 256 * 1024;
