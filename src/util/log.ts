/**
 * One line per event on stderr (docs/architecture.md#daemon): `2026-11-23T01:02:03.456Z info  session opened peer=atlas_… path=direct`
 * or, with format "json", `{"ts":…,"level":"info","msg":"session opened","peer":"…"}`.
 */
export type LogLevel = "debug" | "info" | "warn" | "error" | "silent";
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 99 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/** Every level, quietest last (for `--log-level`'s choices). */
export const LOG_LEVELS = Object.keys(ORDER) as LogLevel[];

export function isLogLevel(s: string): s is LogLevel {
  return s in ORDER;
}

export function createLogger(
  level: LogLevel = "info",
  format: "text" | "json" = "text",
  write: (line: string) => void = (l) => process.stderr.write(l),
): Logger {
  const min = ORDER[level];
  const emit = (lvl: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    if (ORDER[lvl] < min) return;
    const ts = new Date().toISOString();
    if (format === "json") {
      write(JSON.stringify({ ts, level: lvl, msg, ...fields }) + "\n");
      return;
    }
    let line = `${ts} ${lvl.padEnd(5)} ${msg}`;
    if (fields) {
      for (const [k, v] of Object.entries(fields)) {
        if (v !== undefined) line += ` ${k}=${typeof v === "string" ? v : JSON.stringify(v)}`;
      }
    }
    write(line + "\n");
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
  };
}

export const silentLogger: Logger = createLogger("silent");

/**
 * At most `burst` lines of one kind per `windowMs`; the rest are counted and the count goes with
 * the next line let through. For lines a peer can trigger at will (one per frame it sends).
 */
export class LogBudget {
  private left: number;
  private windowStart = -Infinity;
  private dropped = 0;

  constructor(
    private readonly burst: number,
    private readonly windowMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.left = burst;
  }

  /** null: do not log this one; else log it, with how many were dropped since the last logged. */
  take(): { suppressed: number } | null {
    const t = this.now();
    if (t - this.windowStart >= this.windowMs) {
      this.windowStart = t;
      this.left = this.burst;
    }
    if (this.left <= 0) {
      this.dropped++;
      return null;
    }
    this.left--;
    const suppressed = this.dropped;
    this.dropped = 0;
    return { suppressed };
  }
}
