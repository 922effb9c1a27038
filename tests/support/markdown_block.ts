/**
 * Code blocks of a markdown document, found by the heading they stand under, so a test runs the
 * text a reader sees and cannot drift from it.
 */

/**
 * The body of the first fenced block in `lang` (e.g. "sh") between the heading line `heading`
 * (exactly, e.g. "### Walk-through: …") and the next heading of any level. Throws naming the
 * heading when it or its block is missing.
 */
export function blockUnderHeading(markdown: string, heading: string, lang: string): string {
  const lines = markdown.split("\n");
  const at = lines.indexOf(heading);
  if (at < 0) throw new Error(`No heading "${heading}" in the document`);
  let body: string[] | undefined;
  for (const line of lines.slice(at + 1)) {
    if (body === undefined) {
      if (/^#{1,6} /.test(line)) break;
      if (line.trimEnd() === "```" + lang) body = [];
    } else if (line.trimEnd() === "```") {
      return body.join("\n") + "\n";
    } else {
      body.push(line);
    }
  }
  throw new Error(
    body === undefined
      ? `No \`\`\`${lang} block under the heading "${heading}"`
      : `The \`\`\`${lang} block under "${heading}" is not closed`,
  );
}
