import { isAtlasError, ProtocolCode } from "../../errors.ts";
import type { FramedStream } from "../../wire/framed-stream.ts";
import type { WireMessage } from "../../wire/messages.ts";
import { PIPE_READ_AHEAD, PIPE_READ_AHEAD_BYTES } from "./constants.ts";
import { PIPE_BURST_SLICE_MS } from "../../config/durations.ts";

const NOT_ANSWERED: WireMessage = {
  type: "Error",
  code: ProtocolCode.ERR_INTERNAL,
  message: "the request's handler gave no answer",
};

/** A request's answer, and what to do once it is written (a rate-limit penalty, say). */
export interface Answer {
  res: WireMessage | null;
  after?: () => Promise<void>;
}

export interface PipeService {
  fs: FramedStream;
  /** Admit and handle one request frame of `bytes` bytes; called in frame order; must not reject. */
  answer(req: WireMessage, bytes: number): Promise<Answer>;
  /** How long the pipe may sit with every request answered and no FIN. */
  readTimeoutMs: number;
}

/**
 * The responder's end of a pipe (docs/protocol.md#pipelined-requests), from its second request
 * frame on (`first` answers the first). Frames are read ahead — at most PIPE_READ_AHEAD of them
 * and PIPE_READ_AHEAD_BYTES unanswered — and handed to their handlers in frame order, so the
 * inbox commits a pipe's Messages together and in order; answers are written in frame order.
 * After the requester's FIN the last answer carries ours. A refused frame (malformed, over a
 * limit) ends the pipe: its Error follows the answers before it, with FIN. Throws what broke the
 * pipe (the caller logs it, penalizes a refusal, resets the stream) once the answers are out.
 */
export async function servePipe(p: PipeService, first: Answer): Promise<void> {
  const { fs } = p;
  fs.holdRefusal = true;
  fs.stream.burstSliceMs = PIPE_BURST_SLICE_MS; // answers made together share a packet
  const queue: { answer: Promise<Answer>; bytes: number }[] = [{ answer: Promise.resolve(first), bytes: 0 }];
  let queuedBytes = 0;
  let readerDone = false;
  let failure: unknown = null;
  let wakeReader: (() => void) | null = null;
  let wakeWriter: (() => void) | null = null;
  const wake = (w: (() => void) | null) => w?.();

  const full = () => queue.length >= PIPE_READ_AHEAD || (queue.length > 0 && queuedBytes >= PIPE_READ_AHEAD_BYTES);
  const read = async () => {
    try {
      for (;;) {
        while (full()) await new Promise<void>((r) => (wakeReader = r));
        let req: WireMessage | null;
        try {
          req = await fs.read(p.readTimeoutMs);
        } catch (e) {
          // Quiet while answers are still being made is fine: the requester waits for them.
          if (isAtlasError(e, "ERR_TIMEOUT") && queue.length > 0) continue;
          throw e;
        }
        if (req === null) break;
        const bytes = fs.lastFrameBytes;
        queue.push({ answer: p.answer(req, bytes), bytes });
        queuedBytes += bytes;
        wake(wakeWriter);
      }
    } catch (e) {
      failure = e;
    } finally {
      readerDone = true;
      wake(wakeWriter);
    }
  };
  void read();

  let finished = false;
  while (queue.length > 0 || !readerDone) {
    if (queue.length === 0) {
      await new Promise<void>((r) => (wakeWriter = r));
      continue;
    }
    const a = await queue[0]!.answer;
    queuedBytes -= queue.shift()!.bytes;
    wake(wakeReader);
    if (failure !== null && fs.heldRefusal === null) break; // reset or timed out: nobody reads answers
    finished = readerDone && failure === null && queue.length === 0;
    const res = a.res ?? NOT_ANSWERED; // every frame gets an answer, or those after it would be misread
    await (finished ? fs.end(res) : fs.write(res));
    await a.after?.();
  }
  if (fs.heldRefusal) await fs.end(fs.heldRefusal);
  else if (failure === null && !finished) await fs.end(); // the requester's FIN came after our last answer
  if (failure !== null) throw failure;
}
