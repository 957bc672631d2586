import type { ConfigFields } from "./load.js";

/**
 * A binary's options as a Markdown table (flag, variable, default, meaning), generated from the
 * same field definitions loadConfig validates with — docs/CONFIGURATION.md is this output, and
 * a test fails when it is stale (`npm run docs:config` rewrites it).
 */
export function configReference(fieldsOf: ConfigFields): string {
  const rows = Object.values(fieldsOf).map((f) => {
    const parsed = f.schema.safeParse(undefined);
    const fallback = parsed.success && parsed.data !== undefined ? defaultText(parsed.data) : "—";
    const cell = (text: string) => text.replaceAll("|", "\\|");
    return `| ${f.env ? `\`${f.env}\`` : "—"} | ${f.flag ? `\`--${f.flag}\`` : "—"} | ${cell(fallback)} | ${cell(f.doc)} |`;
  });
  return ["| variable | flag | default | meaning |", "|---|---|---|---|", ...rows].join("\n");
}

function defaultText(value: unknown): string {
  if (Array.isArray(value) && value.length === 0) return "—";
  if (typeof value === "object" && value !== null && Object.keys(value).length === 0) return "—";
  return `\`${typeof value === "string" ? value : JSON.stringify(value)}\``;
}
