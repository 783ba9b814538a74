/** A small line chart as SVG text: log-scale x (the loads), linear or log y, one line per series. */
export interface Series {
  name: string;
  points: [number, number][];
}

const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"];
const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");

export function lineChart(o: { title: string; series: Series[]; logY: boolean; width?: number; height?: number }): string {
  const W = o.width ?? 640;
  const H = o.height ?? 360;
  const m = { l: 60, r: 130, t: 30, b: 40 };
  const pts = o.series.flatMap((s) => s.points);
  if (pts.length === 0) return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}"></svg>`;
  const xs = pts.map((p) => p[0]);
  const ys = pts.map((p) => p[1]);
  const lx = (v: number) => Math.log10(v);
  const fy = o.logY ? lx : (v: number) => v;
  const x0 = lx(Math.min(...xs)), x1 = lx(Math.max(...xs)) + 1e-9;
  let y0 = o.logY ? Math.floor(lx(Math.min(...ys))) : Math.min(0, ...ys);
  let y1 = o.logY ? Math.ceil(lx(Math.max(...ys))) : Math.max(...ys);
  if (!o.logY) y0 = Math.min(y0, Math.floor(Math.min(...ys) / 10) * 10);
  if (y1 <= y0) y1 = y0 + 1;
  const X = (v: number) => m.l + ((lx(v) - x0) / (x1 - x0)) * (W - m.l - m.r);
  const Y = (v: number) => H - m.b - ((fy(v) - y0) / (y1 - y0)) * (H - m.t - m.b);
  const out: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`, `<rect width="${W}" height="${H}" fill="white"/>`, `<text x="${W / 2}" y="18" text-anchor="middle" font-size="13">${esc(o.title)}</text>`];
  // Axes with ticks: every load on x; decades (log) or five steps (linear) on y.
  out.push(`<line x1="${m.l}" y1="${H - m.b}" x2="${W - m.r}" y2="${H - m.b}" stroke="#333"/><line x1="${m.l}" y1="${m.t}" x2="${m.l}" y2="${H - m.b}" stroke="#333"/>`);
  for (const v of [...new Set(xs)].sort((a, b) => a - b)) out.push(`<line x1="${X(v)}" y1="${H - m.b}" x2="${X(v)}" y2="${H - m.b + 4}" stroke="#333"/><text x="${X(v)}" y="${H - m.b + 16}" text-anchor="middle">${v >= 1000 ? `${v / 1000}k` : v}</text>`);
  const yt = o.logY ? Array.from({ length: y1 - y0 + 1 }, (_, i) => 10 ** (y0 + i)) : Array.from({ length: 6 }, (_, i) => y0 + ((y1 - y0) * i) / 5);
  for (const v of yt) out.push(`<line x1="${m.l}" y1="${Y(v)}" x2="${W - m.r}" y2="${Y(v)}" stroke="#ddd"/><text x="${m.l - 6}" y="${Y(v) + 4}" text-anchor="end">${+v.toPrecision(3)}</text>`);
  o.series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length];
    const p = s.points.map(([x, y]) => `${X(x).toFixed(1)},${Y(y).toFixed(1)}`);
    out.push(`<polyline fill="none" stroke="${c}" stroke-width="2" points="${p.join(" ")}"/>`);
    for (const q of p) out.push(`<circle cx="${q.split(",")[0]}" cy="${q.split(",")[1]}" r="3" fill="${c}"/>`);
    out.push(`<rect x="${W - m.r + 12}" y="${m.t + 16 * i}" width="12" height="3" fill="${c}"/><text x="${W - m.r + 28}" y="${m.t + 16 * i + 5}">${esc(s.name)}</text>`);
  });
  out.push("</svg>");
  return out.join("\n");
}
