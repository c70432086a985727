/**
 * What bench/run.ts hands each phase: where its files go, how it reports (rows of the results
 * table, notes under it, progress lines) and CPU placement. The transport phases also get the
 * server child (bench/server.ts) and this process's client node.
 */
import type { TlsCreds } from "../baseline.ts";
import type { BenchNode, ServerReady } from "../common.ts";

/** A figure's target: its ratio must be at most (`<=`) or at least (`>=`) `value`. */
export interface Target {
  op: "<=" | ">=";
  value: number;
}

/** Adds one row to the results table (bench/results.ts). */
export type AddRow = (
  figure: string,
  atlas: string,
  tcp: string,
  tls: string,
  ratio?: number,
  ratioVs?: string,
  target?: Target,
) => void;

export interface PhaseApi {
  /** The repository's root. */
  root: string;
  /** The run's temp dir (stores, homes), removed at exit. */
  benchRoot: string;
  /** One row: figure, Atlas column, TCP column, TLS column, ratio, "vs" text, target. */
  addRow: AddRow;
  note(s: string): void;
  log(s: string): void;
  /** taskset: pin `pid` (all threads) to the CPU list; false if not possible. */
  pin(pid: number, cpuList: string): boolean;
  /** Whether run.ts pinned the processes (false with BENCH_NO_PIN=1 or on one core). */
  pinning: boolean;
}

/** The connect, idle, rtt, req and bulk phases: the same, plus the server child and the client. */
export interface TransportApi extends PhaseApi {
  ready: ServerReady;
  creds: TlsCreds;
  client: BenchNode;
  /** Ask the server child (bench/server.ts) for `cmd` ("counts", "mem", "bulkBytes", …). */
  rpc<T = Record<string, unknown>>(cmd: string, timeoutMs?: number): Promise<T>;
}
