/** Counters and gauges rendered as Prometheus text for `GET /metrics`. */
export class Metrics {
  readonly #counters = new Map<string, { help: string; value: number }>();
  readonly #gauges = new Map<string, { help: string; read: () => number }>();

  /** Adds `by` to counter `name` (created on first use). */
  count(name: string, help: string, by = 1): void {
    const c = this.#counters.get(name);
    if (c) c.value += by;
    else this.#counters.set(name, { help, value: by });
  }

  /** Registers a gauge read when the metrics are rendered. */
  gauge(name: string, help: string, read: () => number): void {
    this.#gauges.set(name, { help, read });
  }

  /** The Prometheus text exposition. */
  render(): string {
    const lines: string[] = [];
    for (const [name, c] of this.#counters) {
      lines.push(`# HELP ${name} ${c.help}`, `# TYPE ${name} counter`, `${name} ${c.value}`);
    }
    for (const [name, g] of this.#gauges) {
      lines.push(`# HELP ${name} ${g.help}`, `# TYPE ${name} gauge`, `${name} ${g.read()}`);
    }
    return lines.join("\n") + "\n";
  }
}
