// Byte sizes on the command line: "2G", "512MiB", "1.5GB", "100m", "123456".
// Binary multiples throughout (G = GiB), as memory is counted that way.

const UNITS: Record<string, number> = { '': 1, b: 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };

/** Parses a size; returns null if `s` is not one. */
export function parseSize(s: string): number | null {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$/i.exec(s);
  if (!m) return null;
  const v = Number(m[1]) * UNITS[m[2]!.toLowerCase()]!;
  return Number.isFinite(v) ? Math.round(v) : null;
}

/** "1.50 GiB"-style rendering. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let u = 0;
  let v = n;
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(2)} ${units[u]}`;
}
