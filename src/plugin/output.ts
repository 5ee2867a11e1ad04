/** How `kubectl geo` prints: kubectl-style tables, or JSON / YAML for scripts. */
import { stringify } from "yaml";
import type { OutputFormat } from "./cluster.ts";

/** Columns left-aligned and separated by three spaces, as kubectl's printers do. */
export function renderTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join("   ")
      .trimEnd();
  return [line(headers), ...rows.map(line)].join("\n") + "\n";
}

/** JSON or YAML of a plain object (dates become RFC 3339 strings). */
export function renderStructured(format: Exclude<OutputFormat, "table">, value: unknown): string {
  const plain: unknown = JSON.parse(JSON.stringify(value));
  return format === "json" ? `${JSON.stringify(plain, null, 2)}\n` : stringify(plain);
}

/** RFC 3339 to the second, or "-". */
export function formatTime(date: Date | null | undefined): string {
  return date ? date.toISOString().replace(/\.\d{3}Z$/, "Z") : "-";
}

/** Percentages as the GeoSite printer columns show them: one decimal, rounded down. */
export function formatPercent(value: number | null | undefined): string {
  return value === null || value === undefined ? "-" : `${(Math.floor(value * 10) / 10).toFixed(1)}%`;
}

export function formatCount(value: number | null | undefined): string {
  return value === null || value === undefined ? "-" : String(value);
}

/** A kubectl-like age: 45s, 12m, 3h, 5d. */
export function formatAge(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 120) return `${s}s`;
  if (s < 2 * 3600) return `${Math.floor(s / 60)}m`;
  if (s < 2 * 86400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

/** Cuts text for a table cell; JSON and YAML keep it whole. */
export function ellipsize(text: string | null | undefined, max = 60): string {
  if (!text) return "-";
  const oneLine = text.replace(/\s+/g, " ");
  return oneLine.length <= max ? oneLine : `${oneLine.slice(0, max - 1)}…`;
}
