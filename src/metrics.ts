/**
 * Prometheus metrics of one service, on prom-client: one registry per service, labels as data
 * (`trackmirror_host_writes_total{volume="vol0",outcome="backup"}`), one HELP/TYPE per family,
 * base units in the name (`_bytes`, `_seconds`) and `_total` on counters. Names are checked when a
 * family is registered, so a badly named metric fails the first test that builds the service.
 */
import {
  collectDefaultMetrics,
  Counter,
  Gauge,
  Histogram,
  type LabelValues,
  Registry,
} from "prom-client";

export type { Histogram } from "prom-client";

/** Every family of ours starts with this; `process_*` and `nodejs_*` are prom-client's defaults. */
export const metricPrefix = "trackmirror_";

const namePattern = /^trackmirror_[a-z][a-z0-9_]*$/;

/**
 * Reads a family's current values when `/metrics` is scraped. It may be async (the tracker reads
 * its volumes through its committer); what it sets replaces the family's values only once it is
 * done, so a slow read never shows a half-filled family.
 */
export type GaugeCollect<L extends string> = (
  set: (labels: LabelValues<L>, value: number) => void,
) => void | Promise<void>;

export interface MetricsOptions {
  /** Also export prom-client's default process metrics (CPU, memory, event loop). Default true. */
  defaults?: boolean;
}

/** The metric families of one service and their text exposition. */
export class Metrics {
  readonly registry = new Registry();
  readonly contentType: string = this.registry.contentType;

  constructor(opts: MetricsOptions = {}) {
    if (opts.defaults ?? true) {
      collectDefaultMetrics({ register: this.registry });
      fitDefaultsToDeno(this.registry);
    }
  }

  readonly #counters = new Map<string, Counter<string>>();

  /**
   * Adds `by` to counter `name` (the family is registered on first use, with the label names of
   * that first call). For counters bumped in one place; declare with `counter()` otherwise.
   */
  count(name: string, help: string, by = 1, labels: Record<string, string> = {}): void {
    let c = this.#counters.get(name);
    if (!c) {
      c = this.counter(name, help, Object.keys(labels));
      this.#counters.set(name, c);
    }
    c.inc(labels, by);
  }

  /**
   * A counter family; `name` ends in `_total`. With `collect`, its values are read at every
   * scrape from a running total the component keeps (it must never go down).
   */
  counter<L extends string = never>(
    name: string,
    help: string,
    labelNames: readonly L[] = [],
    collect?: GaugeCollect<L>,
  ): Counter<L> {
    checkName(name);
    if (!name.endsWith("_total")) {
      throw new RangeError(`Counter "${name}" must end in _total`);
    }
    const counter: Counter<L> = new Counter({
      name,
      help,
      labelNames,
      registers: [this.registry],
      collect: readAtScrape(() => counter, collect, (labels, value) => counter.inc(labels, value)),
    });
    return counter;
  }

  /**
   * A gauge family. With `collect`, its values are read at every scrape (the gauge is reset
   * first, so a label set that disappeared — a closed volume — disappears from the output).
   */
  gauge<L extends string = never>(
    name: string,
    help: string,
    labelNames: readonly L[] = [],
    collect?: GaugeCollect<L>,
  ): Gauge<L> {
    checkName(name);
    if (name.endsWith("_total")) throw new RangeError(`Gauge "${name}" must not end in _total`);
    const gauge: Gauge<L> = new Gauge({
      name,
      help,
      labelNames,
      registers: [this.registry],
      collect: readAtScrape(() => gauge, collect, (labels, value) => gauge.set(labels, value)),
    });
    return gauge;
  }

  /** A histogram family; `name` carries its unit (`_seconds`, `_bytes`, or a count: `_records`). */
  histogram<L extends string = never>(
    name: string,
    help: string,
    labelNames: readonly L[] = [],
    buckets: number[] = latencySecondsBuckets,
  ): Histogram<L> {
    checkName(name);
    // A component opened again on the same registry (a journal reopened) keeps its histogram.
    const existing = this.registry.getSingleMetric(name);
    if (existing instanceof Histogram) return existing as Histogram<L>;
    if (!/_(seconds|bytes|records)$/.test(name)) {
      throw new RangeError(
        `Histogram "${name}" must end in its base unit (_seconds, _bytes or _records)`,
      );
    }
    return new Histogram({ name, help, labelNames, buckets, registers: [this.registry] });
  }

  /** The Prometheus text exposition of every family. */
  render(): Promise<string> {
    return this.registry.metrics();
  }
}

/** Latency buckets from 50 µs to 10 s: a journal sync is ~0.1–1 ms, a KV commit ~1–10 ms. */
export const latencySecondsBuckets = [
  0.00005,
  0.0001,
  0.00025,
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  10,
];

/**
 * A prom-client `collect` that gathers every value `collect` reports, then (in one synchronous
 * step) resets the family and sets them.
 */
function readAtScrape<L extends string>(
  family: () => { reset(): void },
  collect: GaugeCollect<L> | undefined,
  set: (labels: LabelValues<L>, value: number) => void,
): (() => void | Promise<void>) | undefined {
  if (!collect) return undefined;
  return () => {
    const values: [LabelValues<L>, number][] = [];
    const apply = () => {
      family().reset();
      for (const [labels, value] of values) set(labels, value);
    };
    const pending = collect((labels, value) => values.push([labels, value]));
    if (pending instanceof Promise) return pending.then(apply);
    apply();
  };
}

/**
 * prom-client's Linux defaults read `/proc/self/{status,fd}`, which Deno refuses without
 * `--allow-all` (our tasks grant less): they would then report 0 bytes of memory and 0 open
 * files, a lie. Without procfs those families are dropped, and `process_resident_memory_bytes`
 * is read from `Deno.memoryUsage()` instead. Families Deno's Node layer cannot fill
 * (`nodejs_active_handles*`, `nodejs_active_requests*`: always empty or 0) are dropped too.
 */
function fitDefaultsToDeno(registry: Registry): void {
  for (const name of denoEmptyDefaults) registry.removeSingleMetric(name);
  if (procfsReadable()) return;
  for (const name of procfsDefaults) registry.removeSingleMetric(name);
  new Gauge({
    name: "process_resident_memory_bytes",
    help: "Resident memory size in bytes.",
    registers: [registry],
    collect() {
      this.set(Deno.memoryUsage().rss);
    },
  });
}

/** prom-client defaults that only procfs fills. */
const procfsDefaults = [
  "process_resident_memory_bytes",
  "process_virtual_memory_bytes",
  "process_heap_bytes",
  "process_open_fds",
];

/** prom-client defaults Deno's `process` leaves empty. */
const denoEmptyDefaults = [
  "nodejs_active_handles",
  "nodejs_active_handles_total",
  "nodejs_active_requests",
  "nodejs_active_requests_total",
];

function procfsReadable(): boolean {
  try {
    Deno.readTextFileSync("/proc/self/status");
    Deno.readDirSync("/proc/self/fd");
    return true;
  } catch {
    return false;
  }
}

function checkName(name: string): void {
  if (!namePattern.test(name)) {
    throw new RangeError(`Metric name "${name}" must match ${namePattern}`);
  }
}
