/**
 * Internal (CLI): aligned tables and key/value lists for people, and the
 * small formatters they use.
 *
 * @module
 */

/** A column: its heading and whether it is right-aligned (numbers). */
export interface Column {
  readonly title: string;
  readonly right?: boolean;
}

/** Rows under headings, each column as wide as its widest cell, two spaces apart. */
export function table(columns: readonly Column[], rows: readonly (readonly string[])[]): string {
  const widths = columns.map((c, i) =>
    Math.max(c.title.length, ...rows.map((r) => (r[i] ?? "").length))
  );
  const line = (cells: readonly string[]): string =>
    columns.map((c, i) => {
      const cell = cells[i] ?? "";
      const width = widths[i] ?? 0;
      // The last left-aligned column gets no trailing padding.
      if (i === columns.length - 1 && c.right !== true) return cell;
      return c.right === true ? cell.padStart(width) : cell.padEnd(width);
    }).join("  ");
  return [line(columns.map((c) => c.title)), ...rows.map(line)].join("\n") + "\n";
}

/** "key: value" lines, the values aligned. */
export function keyValues(pairs: readonly (readonly [string, string])[]): string {
  const width = Math.max(0, ...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${(k + ":").padEnd(width + 1)}  ${v}`).join("\n") + "\n";
}

/** Bytes for people: exact below 1 KiB, else one decimal and a binary unit. */
export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
  let value = n;
  let unit = -1;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

/** Permission bits as 4 octal digits. */
export function octal(mode: number): string {
  return mode.toString(8).padStart(4, "0");
}

/** An ISO date as "YYYY-MM-DD HH:MM:SS" (UTC), "-" for none. */
export function when(date: string | null): string {
  return date === null ? "-" : date.slice(0, 19).replace("T", " ");
}
