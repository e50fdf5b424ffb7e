import type { DoorName } from "./cli.js";
import type { ModelResult } from "./model-run.js";

/**
 * Hand-written SVG: one panel per model and door, sessions on a log2 x axis, latency p50/p95 on
 * the left axis, delivered FPS on the right, the bare pipeline's capacity as a dotted line.
 */
const W = 250;
const H = 170;
const PAD = { l: 42, r: 38, t: 22, b: 28 };
const COLORS = { p50: "#1f77b4", p95: "#1f77b4", fps: "#ff7f0e", cap: "#ff7f0e" };

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");
const nice = (v: number) => {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 2.5, 5, 10].map((m) => m * p).find((x) => x >= v) ?? v;
};

/** One latency and one FPS scale per model, so its doors compare at a glance. */
function scales(m: ModelResult): { maxLat: number; maxFps: number } {
  const finite = (xs: number[]) => xs.filter(Number.isFinite);
  return {
    maxLat: nice(Math.max(1, ...finite(m.points.map((p) => p.latency.p95)))),
    maxFps: nice(Math.max(m.bare.best.fps * 1.1, ...finite(Object.values(m.localBare).map((t) => t?.fps ?? 0)), ...m.points.map((p) => p.deliveredFps))),
  };
}

function panel(m: ModelResult, door: DoorName, x0: number, y0: number): string {
  const pts = m.points.filter((p) => p.door === door).sort((a, b) => a.sessions - b.sessions);
  const out: string[] = [`<g transform="translate(${x0},${y0})">`];
  out.push(`<text x="${W / 2}" y="14" text-anchor="middle" font-size="11" font-weight="bold">${esc(`${m.label} · ${door}`)}</text>`);
  if (pts.length === 0) return [...out, "</g>"].join("");
  const maxN = Math.max(...pts.map((p) => p.sessions), 2);
  const { maxLat, maxFps } = scales(m);
  const pw = W - PAD.l - PAD.r;
  const ph = H - PAD.t - PAD.b;
  const sx = (n: number) => PAD.l + (Math.log2(n) / Math.log2(maxN)) * pw;
  const sl = (v: number) => PAD.t + ph - (v / maxLat) * ph;
  const sf = (v: number) => PAD.t + ph - (v / maxFps) * ph;
  out.push(`<rect x="${PAD.l}" y="${PAD.t}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`);
  for (let i = 0; i <= 4; i++) {
    const y = PAD.t + (ph * i) / 4;
    out.push(`<line x1="${PAD.l}" x2="${PAD.l + pw}" y1="${y}" y2="${y}" stroke="#eee"/>`);
    out.push(`<text x="${PAD.l - 3}" y="${y + 3}" font-size="8" text-anchor="end" fill="${COLORS.p50}">${Math.round(maxLat * (1 - i / 4))}</text>`);
    out.push(`<text x="${PAD.l + pw + 3}" y="${y + 3}" font-size="8" fill="${COLORS.fps}">${+(maxFps * (1 - i / 4)).toFixed(1)}</text>`);
  }
  let lastLabelX = Number.NEGATIVE_INFINITY;
  for (const p of pts) {
    // On a log axis 32 and 35 sit a few pixels apart: label only where there is room.
    if (sx(p.sessions) - lastLabelX < 14) continue;
    lastLabelX = sx(p.sessions);
    out.push(`<text x="${lastLabelX}" y="${PAD.t + ph + 11}" font-size="8" text-anchor="middle">${p.sessions}</text>`);
  }
  out.push(`<text x="${PAD.l + pw / 2}" y="${H - 4}" font-size="8" text-anchor="middle">sessions (${pts[0]?.fps} FPS each)</text>`);
  out.push(`<text x="10" y="${PAD.t + ph / 2}" font-size="8" transform="rotate(-90 10 ${PAD.t + ph / 2})" text-anchor="middle">latency ms</text>`);
  out.push(`<text x="${W - 6}" y="${PAD.t + ph / 2}" font-size="8" transform="rotate(90 ${W - 6} ${PAD.t + ph / 2})" text-anchor="middle">delivered fps</text>`);
  const line = (ys: (p: (typeof pts)[number]) => number, color: string, dash: string) => {
    const d = pts
      .filter((p) => Number.isFinite(ys(p)))
      .map((p, i) => `${i === 0 ? "M" : "L"}${sx(p.sessions).toFixed(1)},${ys(p).toFixed(1)}`)
      .join(" ");
    return `<path d="${d}" fill="none" stroke="${color}" stroke-width="1.6" stroke-dasharray="${dash}"/>` +
      pts.map((p) => (Number.isFinite(ys(p)) ? `<circle cx="${sx(p.sessions).toFixed(1)}" cy="${ys(p).toFixed(1)}" r="2" fill="${color}"/>` : "")).join("");
  };
  // The capacity this door was judged against: bare throughput measured around its points.
  const capY = sf(m.localBare[door]?.fps ?? m.bare.best.fps);
  out.push(`<line x1="${PAD.l}" x2="${PAD.l + pw}" y1="${capY}" y2="${capY}" stroke="${COLORS.cap}" stroke-dasharray="2 3"/>`);
  out.push(line((p) => sl(p.latency.p50), COLORS.p50, ""));
  out.push(line((p) => sl(p.latency.p95), COLORS.p95, "5 3"));
  out.push(line((p) => sf(p.deliveredFps), COLORS.fps, ""));
  out.push("</g>");
  return out.join("");
}

export function chartSvg(models: readonly ModelResult[], doors: readonly DoorName[], caption: string): string {
  const cols = doors.length;
  const width = cols * W + 10;
  const height = models.length * H + 44;
  const body: string[] = [];
  models.forEach((m, r) => doors.forEach((d, c) => body.push(panel(m, d, 5 + c * W, 40 + r * H))));
  const legend =
    `<g font-size="10" transform="translate(8,14)">` +
    `<line x1="0" x2="18" y1="0" y2="0" stroke="${COLORS.p50}" stroke-width="1.6"/><text x="22" y="3">latency p50</text>` +
    `<line x1="100" x2="118" y1="0" y2="0" stroke="${COLORS.p95}" stroke-width="1.6" stroke-dasharray="5 3"/><text x="122" y="3">latency p95</text>` +
    `<line x1="200" x2="218" y1="0" y2="0" stroke="${COLORS.fps}" stroke-width="1.6"/><text x="222" y="3">delivered total FPS</text>` +
    `<line x1="330" x2="348" y1="0" y2="0" stroke="${COLORS.cap}" stroke-dasharray="2 3"/><text x="352" y="3">bare pipeline max FPS (around the door's points)</text>` +
    `<text x="0" y="18" fill="#555">${esc(caption)}</text></g>`;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">` +
    `<rect width="100%" height="100%" fill="white"/>${legend}${body.join("")}</svg>\n`;
}
