import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { REPO } from "./switchboard.js";

export const DOC = join(REPO, "docs", "benchmarks.md");

/**
 * Replaces one `## ` section of docs/benchmarks.md (found by the start of its
 * heading) up to its first `### ` subsection, and leaves every other section
 * and those subsections as they are: others own them.
 */
export function replaceSection(headingStart: string, body: string): void {
  const text = readFileSync(DOC, "utf8");
  const lines = text.split("\n");
  const from = lines.findIndex((l) => l.startsWith(`## ${headingStart}`));
  if (from < 0) throw new Error(`docs/benchmarks.md has no section "## ${headingStart}"`);
  let to = lines.findIndex((l, i) => i > from && l.startsWith("## "));
  if (to < 0) to = lines.length;
  // Dated `### ` subsections written by hand under the generated part stay (they record other sittings).
  const sub = lines.findIndex((l, i) => i > from && i < to && l.startsWith("### "));
  if (sub >= 0) to = sub;
  const out = [...lines.slice(0, from + 1), "", body.trimEnd(), "", ...lines.slice(to)];
  writeFileSync(DOC, out.join("\n").replace(/\n{3,}/g, "\n\n"));
}

export function fmt(x: number, digits = 1): string {
  if (Number.isNaN(x)) return "–";
  return x.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}
