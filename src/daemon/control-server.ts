import { createServer, type Server, type Socket } from "node:net";
import { chmod, rm } from "node:fs/promises";
import { AtlasError, Exit } from "../errors.ts";
import type { Logger } from "../util/log.ts";
import type { ControlHandler } from "../util/service.ts";
import {
  CONTROL_VERSION,
  type ControlReply,
  type ControlRequest,
  MAX_CONTROL_LINE,
  MAX_SOCKET_PATH,
} from "./protocol.ts";

export type { ControlHandler };

/** `state/daemon.sock` (mode 0600): answers one request per connection with one reply line. */
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
    this.sockets.add(s);
    s.on("close", () => this.sockets.delete(s));
    s.on("error", () => {});
    let buf = "";
    s.setEncoding("utf8");
    s.on("data", (d: string) => {
      buf += d;
      if (buf.length > MAX_CONTROL_LINE) return void s.destroy();
      const nl = buf.indexOf("\n");
      if (nl < 0) return;
      const line = buf.slice(0, nl);
      buf = "";
      s.pause();
      void this.answer(line).then((reply) => s.end(JSON.stringify(reply) + "\n"));
    });
  }

  private async answer(line: string): Promise<ControlReply> {
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
      return { v: CONTROL_VERSION, ok: true, result: await h(req.args ?? {}) };
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
