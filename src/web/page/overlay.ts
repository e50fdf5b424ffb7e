import type { Box } from "./events.js";

/** Box colours per class; anything else the model names gets the fallback. */
export const CLASS_COLORS: Readonly<Record<string, string>> = { crack: "#ffb000", pothole: "#ff2d6f" };
export const FALLBACK_COLOR = "#00e0ff";

export const colorOf = (className: string): string => CLASS_COLORS[className] ?? FALLBACK_COLOR;

export function labelOf(b: Box): string {
  return `${b.className} ${b.confidence.toFixed(2)}${b.trackId === undefined ? "" : ` #${b.trackId}`}`;
}

/**
 * Draws the boxes of one result on the overlay canvas. The canvas has the frame's own pixel size
 * and CSS stretches it over the video, which has the same aspect ratio, so boxes in source pixels
 * need no arithmetic here and stay aligned at any viewport width.
 */
export function drawBoxes(canvas: HTMLCanvasElement, width: number, height: number, boxes: readonly Box[]): void {
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
  }
  const ctx = canvas.getContext("2d");
  if (!ctx) return;
  ctx.clearRect(0, 0, width, height);
  // Labels and lines keep their on-screen size whatever the frame's resolution and the viewport:
  // sizes below are CSS pixels, converted to canvas pixels.
  const perCssPx = canvas.clientWidth > 0 ? width / canvas.clientWidth : 1;
  const font = Math.round(13 * perCssPx);
  const pad = 4 * perCssPx;
  ctx.font = `600 ${font}px system-ui, sans-serif`;
  ctx.textBaseline = "top";
  for (const b of boxes) {
    const color = colorOf(b.className);
    ctx.strokeStyle = color;
    // Never under 3 canvas pixels: the edge then always covers whole pixels (crisp, testable).
    ctx.lineWidth = Math.max(3, 2.5 * perCssPx);
    ctx.strokeRect(b.x1, b.y1, b.x2 - b.x1, b.y2 - b.y1);
    const text = labelOf(b);
    const tw = ctx.measureText(text).width + 2 * pad;
    const th = font + 1.5 * pad;
    // Above the box when there is room, else inside its top edge.
    const ty = b.y1 - th >= 0 ? b.y1 - th : b.y1;
    const tx = Math.min(Math.max(0, b.x1), Math.max(0, width - tw));
    ctx.fillStyle = color;
    ctx.fillRect(tx, ty, tw, th);
    ctx.fillStyle = "#111";
    ctx.fillText(text, tx + pad, ty + 0.75 * pad);
  }
}

export function clearBoxes(canvas: HTMLCanvasElement): void {
  canvas.getContext("2d")?.clearRect(0, 0, canvas.width, canvas.height);
}
