/** Plain-text tables for bench output, shared by every bench's formatter. */

/** Rows of cells as text columns; numbers right-aligned, text left-aligned. */
export function table(head: string[], rows: (string | number)[][]): string {
  const cells = [head, ...rows.map((r) => r.map(String))];
  const widths = head.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  const numeric = head.map((_, i) => rows.every((r) => typeof r[i] === "number"));
  return cells.map((r) =>
    r.map((c, i) => (numeric[i] ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join("  ")
      .trimEnd()
  ).join("\n");
}
