/**
 * Prometheus text exposition parsed by an independent parser (parse-prometheus-text-format from
 * npm), typed for tests, plus the rules the parser does not enforce: one HELP/TYPE per family and
 * the naming conventions of src/metrics.ts.
 */
import assert from "node:assert/strict";
// @ts-types="./prometheus_parser.d.ts"
import parsePrometheusTextFormat from "parse-prometheus-text-format";

/** One sample of a family; histograms carry buckets, count and sum instead of a value. */
export interface Sample {
  labels?: Record<string, string>;
  value?: string;
  buckets?: Record<string, string>;
  count?: string;
  sum?: string;
}

export interface Family {
  name: string;
  help: string;
  type: "COUNTER" | "GAUGE" | "HISTOGRAM" | "SUMMARY" | "UNTYPED";
  metrics: Sample[];
}

/** Parses `text`, failing the test on anything malformed or against our naming rules. */
export function parseExposition(text: string): Family[] {
  const families = parsePrometheusTextFormat(text) as Family[];
  for (const kind of ["HELP", "TYPE"]) {
    const names = [...text.matchAll(new RegExp(`^# ${kind} (\\S+)`, "gm"))].map((m) => m[1]);
    assert.equal(new Set(names).size, names.length, `one # ${kind} a family: ${names}`);
  }
  for (const f of families) {
    if (/^(process|nodejs)_/.test(f.name)) continue;
    assert.match(f.name, /^trackmirror_[a-z][a-z0-9_]*$/, `family ${f.name}`);
    if (f.type === "COUNTER") assert.match(f.name, /_total$/, `counter ${f.name}`);
    else assert.doesNotMatch(f.name, /_total$/, `${f.type} ${f.name}`);
    for (const m of f.metrics) {
      // The parser folds a labelled histogram into one sample of buckets (labels, count and sum
      // lost): read those from the text (integration_metrics_scrape.test.ts does).
      if (f.type === "HISTOGRAM" && m.buckets && m.count === undefined) continue;
      const v = m.value ?? m.count;
      assert.ok(v !== undefined && !Number.isNaN(Number(v)), `${f.name} sample ${v}`);
    }
  }
  return families;
}

/** The family named `name`, or a failed assertion. */
export function family(families: Family[], name: string): Family {
  const f = families.find((f) => f.name === name);
  assert.ok(f, `family ${name} in ${families.map((f) => f.name).join(", ")}`);
  return f;
}
