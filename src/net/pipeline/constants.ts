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
 * Requests of one pipe a responder reads and hands to handlers before the oldest is answered: enough
 * for the inbox's group commit to take several, few enough that a pipe cannot queue much work.
 */
export const PIPE_READ_AHEAD = 8;

/** …and at most this many request bytes among them (a pipe of 4 MiB Messages is served one at a time). */
export const PIPE_READ_AHEAD_BYTES = 256 * 1024;
