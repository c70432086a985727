import { createServer, type Server, type Socket } from "node:net";
import { chmod, rm } from "node:fs/promises";
import { AtlasError, Exit } from "../errors.ts";
import type { Logger } from "../util/log.ts";
import type { ControlCall, ControlHandler, PushSink } from "../util/service.ts";
import { CONTROL_LIMITS } from "../config/defaults.ts";
import { CONTROL_REQUEST_WAIT_MS } from "../config/durations.ts";
import { socketSink } from "./push-sink.ts";
import {
  CONTROL_VERSION,
  type ControlReply,
  type ControlRequest,
  MAX_CONTROL_LINE,
  MAX_SOCKET_PATH,
} from "./protocol.ts";

export type { ControlHandler };

/**
 * `state/daemon.sock` (mode 0600): answers each request line with one reply line, on a connection
 * the client closes when done; a streaming operation then pushes lines until either side closes
 * (docs/protocol.md#control-socket-cli--daemon).
 */
export class ControlServer {
  private server: Server;
  private sockets = new Set<Socket>();
  private handlers: Map<string, ControlHandler>;
  private log: Logger;

  private constructor(server: Server, handlers: Map<string, ControlHandler>, log: Logger) {
    this.server = server;
    this.handlers = handlers;
    this.log = log;
  }

  static async listen(path: string, handlers: Map<string, ControlHandler>, log: Logger): Promise<ControlServer> {
    if (Buffer.byteLength(path) > MAX_SOCKET_PATH) {
      throw new AtlasError(
        "ERR_CONFIG",
        `control socket path ${path} is ${
          Buffer.byteLength(path)
        } bytes, over the ${MAX_SOCKET_PATH}-byte Unix limit: use a shorter --home`,
      );
    }
    await rm(path, { force: true });
    const server = createServer();
    const cs = new ControlServer(server, handlers, log);
    server.on("connection", (s) => cs.serve(s));
    const old = process.umask(0o177); // the socket is created 0600, never briefly wider
    try {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(path, () => resolve());
      });
    } finally {
      process.umask(old);
    }
    await chmod(path, 0o600);
    return cs;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private serve(s: Socket): void {
    if (this.sockets.size >= CONTROL_LIMITS.MAX_CONNECTIONS) return void s.destroy(); // bounded, whatever clients do
    this.sockets.add(s);
    s.on("close", () => this.sockets.delete(s));
    s.on("error", () => {});
    s.setEncoding("utf8");
    s.once("end", () => s.destroy()); // the client is done
    this.nextRequest(s, "");
  }

  /**
   * Read one request line and answer it. A connection may carry several requests one after
   * another (the library keeps a few open); each must come within CONTROL_REQUEST_WAIT_MS.
   */
  private nextRequest(s: Socket, rest: string): void {
    let buf = "";
    s.setTimeout(CONTROL_REQUEST_WAIT_MS, () => s.destroy());
    const onData = (d: string) => {
      const from = buf.length;
      buf += d;
      const nl = buf.indexOf("\n", from); // only the new part: an 8 MiB line arrives in many chunks
      if (nl < 0) {
        if (buf.length > MAX_CONTROL_LINE) s.destroy();
        return;
      }
      s.off("data", onData);
      s.setTimeout(0); // answering (or streaming) may take long: the operation bounds itself
      s.pause();
      void this.reply(s, buf.slice(0, nl), buf.slice(nl + 1));
    };
    s.on("data", onData);
    if (rest) onData(rest);
    else s.resume();
  }

  /** Answer one request; a streaming operation keeps the connection open for its pushes. */
  private async reply(s: Socket, line: string, rest: string): Promise<void> {
    let written!: () => void;
    const ready = new Promise<void>((r) => (written = r));
    let sink: PushSink | null = null;
    const call: ControlCall = { stream: () => (sink ??= socketSink(s, ready)) };
    const reply = await this.answer(line, call);
    if (s.destroyed) return;
    if (!sink || !reply.ok) {
      s.write(JSON.stringify(reply) + "\n");
      return this.nextRequest(s, rest);
    }
    s.write(JSON.stringify(reply) + "\n");
    // The client sends nothing more; reading on lets its close be seen at once, not at the next push.
    s.on("data", () => {});
    s.resume();
    written();
  }

  private async answer(line: string, call: ControlCall): Promise<ControlReply> {
    let req: ControlRequest;
    try {
      req = JSON.parse(line);
    } catch {
      return fail(new AtlasError("ERR_USAGE", "malformed control request"));
    }
    if (req?.v !== CONTROL_VERSION) {
      return fail(
        new AtlasError(
          "ERR_USAGE",
          `control protocol version ${req?.v} is not supported by this daemon (speaks ${CONTROL_VERSION}): use the atlas binary that started it`,
        ),
      );
    }
    const h = this.handlers.get(req.op);
    if (!h) return fail(new AtlasError("ERR_USAGE", `unknown control operation '${req.op}'`));
    try {
      return { v: CONTROL_VERSION, ok: true, result: await h(req.args ?? {}, call) };
    } catch (e) {
      if (!(e instanceof AtlasError)) {
        this.log.error("control operation failed", { op: req.op, error: (e as Error).message });
      }
      return fail(e);
    }
  }
}

function fail(e: unknown): ControlReply {
  const err = e instanceof AtlasError
    ? e
    : new AtlasError("ERR_INTERNAL", `daemon error: ${(e as Error).message}`, { exit: Exit.ERROR });
  return { v: CONTROL_VERSION, ok: false, error: { code: err.code, message: err.message, exit: err.exit } };
}
