/**
 * The Prometheus side of the metrics sink (src/util/metrics.ts): one prom-client `Registry` per
 * node, never the global one, so two nodes in one process keep separate counts. This folder is the
 * only one that imports prom-client (test/layers.test.ts).
 */
import { collectDefaultMetrics, Counter, Gauge, Registry } from "prom-client";
import { type Labels, type MetricName, METRICS, type MetricsSink, type Sample } from "../util/metrics.ts";

type Reader = () => Sample[] | Promise<Sample[]>;

/**
 * Metrics appear once used: a counter at its first `inc` (an `inc(name, {}, 0)` shows it at 0),
 * a read value at its `observe`. So a daemon does not list the relay's metrics, nor a relay the
 * outbox's.
 */
export class PromMetrics implements MetricsSink {
  readonly registry = new Registry();
  private counters = new Map<MetricName, Counter<string>>();
  private readers = new Map<MetricName, Reader>();

  constructor(o: { role: string; version: string; processMetrics?: boolean }) {
    this.observe("atlas_info", () => [{ labels: { role: o.role, version: o.version }, value: 1 }]);
    if (o.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  inc(name: MetricName, labels: Labels = {}, n = 1): void {
    let c = this.counters.get(name);
    if (!c) {
      const def = METRICS[name];
      if (def.kind !== "counter" || this.readers.has(name)) throw new Error(`metric ${name} is not an event counter`);
      c = new Counter({ name, help: def.help, labelNames: [...def.labels], registers: [this.registry] });
      this.counters.set(name, c);
    }
    c.inc({ ...labels }, n);
  }

  observe(name: MetricName, read: Reader): void {
    if (this.counters.has(name)) throw new Error(`metric ${name} is an event counter`);
    const known = this.readers.has(name);
    this.readers.set(name, read);
    if (known) return;
    const def = METRICS[name];
    const readers = this.readers;
    const base = { name, help: def.help, labelNames: [...def.labels], registers: [this.registry] };
    if (def.kind === "gauge") {
      new Gauge({
        ...base,
        async collect() {
          const samples = await readers.get(name)!();
          this.reset();
          for (const s of samples) this.set({ ...s.labels }, s.value);
        },
      });
    } else {
      new Counter({
        ...base,
        async collect() {
          const samples = await readers.get(name)!();
          this.reset();
          for (const s of samples) this.inc({ ...s.labels }, s.value);
        },
      });
    }
  }

  /** The text exposition format (what GET /metrics answers). */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
