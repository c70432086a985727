/**
 * The Prometheus endpoint (`metrics.listen`, docs/operating.md "Metrics"): plain HTTP, GET
 * /metrics answers the text exposition format, anything else 404. Off unless `metrics.listen` is
 * set; a host that is not loopback is refused unless `metrics.allow_remote = true` says so
 * (docs/decisions.md, "Metrics endpoint"): the counters say who talks to whom how often, which is
 * not for the whole network to read, and there is no authentication.
 */
import { createServer, type Server } from "node:http";
import { isIP } from "node:net";
import { AtlasError } from "../errors.ts";
import type { Logger } from "../util/log.ts";
import type { PromMetrics } from "./prom.ts";

export interface MetricsListen {
  host: string;
  port: number;
}

/** `127.0.0.1:9464`, `[::1]:9464`, `localhost:9464` → host and port; ERR_CONFIG otherwise. */
export function parseMetricsListen(listen: string, allowRemote: boolean): MetricsListen {
  const m = /^\[([0-9a-fA-F:.]+)\]:(\d{1,5})$/.exec(listen.trim()) ??
    /^([A-Za-z0-9.-]+):(\d{1,5})$/.exec(listen.trim());
  const port = m ? Number(m[2]) : -1;
  if (!m || port > 65535) {
    throw new AtlasError("ERR_CONFIG", `'metrics.listen' must be host:port (e.g. 127.0.0.1:9464), got '${listen}'`);
  }
  const host = m[1]!;
  if (!allowRemote && !isLoopback(host)) {
    throw new AtlasError(
      "ERR_CONFIG",
      `'metrics.listen' is ${listen}, not a loopback address: set metrics.allow_remote = true to serve metrics beyond this host`,
    );
  }
  return { host, port };
}

export function isLoopback(host: string): boolean {
  if (host === "localhost") return true;
  if (isIP(host) === 4) return host.startsWith("127.");
  if (isIP(host) === 6) return host === "::1" || /^(0{0,4}:){7}0{0,3}1$/.test(host) || /^::ffff:127\./i.test(host);
  return false;
}

export interface MetricsServer {
  /** `host:port` it listens on (the port the OS chose for port 0). */
  readonly address: string;
  close(): Promise<void>;
}

/** Serve `metrics` on `at`. ERR_ADDR_IN_USE / ERR_IO when the TCP port cannot be bound. */
export async function serveMetrics(metrics: PromMetrics, at: MetricsListen, log: Logger): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    if (path !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found: metrics are at /metrics\n");
      return;
    }
    metrics.text().then(
      (body) => res.writeHead(200, { "content-type": metrics.contentType }).end(req.method === "HEAD" ? "" : body),
      (e: Error) => {
        log.warn("metrics: collection failed", { error: e.message });
        res.writeHead(500, { "content-type": "text/plain" }).end("metrics collection failed\n");
      },
    );
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", (e: NodeJS.ErrnoException) => {
      const where = `${at.host.includes(":") ? `[${at.host}]` : at.host}:${at.port}`;
      reject(
        e.code === "EADDRINUSE"
          ? new AtlasError("ERR_ADDR_IN_USE", `metrics.listen: TCP port ${where} is taken`)
          : new AtlasError("ERR_IO", `metrics.listen: cannot listen on ${where}: ${e.message}`),
      );
    });
    server.listen(at.port, at.host, () => resolve());
  });
  const a = server.address();
  const address = a && typeof a === "object"
    ? `${a.family === "IPv6" ? `[${a.address}]` : a.address}:${a.port}`
    : `${at.host}:${at.port}`;
  server.unref();
  return {
    address,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
