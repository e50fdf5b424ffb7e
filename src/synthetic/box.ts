/** Axis-aligned box in pixels, (x1, y1) top-left and (x2, y2) bottom-right. */
export interface PixelBox {
  readonly x1: number;
  readonly y1: number;
  readonly x2: number;
  readonly y2: number;
}

export function boundsOf(points: Iterable<readonly [number, number]>, pad = 0): PixelBox {
  let x1 = Infinity;
  let y1 = Infinity;
  let x2 = -Infinity;
  let y2 = -Infinity;
  for (const [x, y] of points) {
    if (x < x1) x1 = x;
    if (y < y1) y1 = y;
    if (x > x2) x2 = x;
    if (y > y2) y2 = y;
  }
  return { x1: x1 - pad, y1: y1 - pad, x2: x2 + pad, y2: y2 + pad };
}

export function boxesOverlap(a: PixelBox, b: PixelBox, margin: number): boolean {
  return a.x1 - margin < b.x2 && b.x1 - margin < a.x2 && a.y1 - margin < b.y2 && b.y1 - margin < a.y2;
}

export function clipBox(box: PixelBox, width: number, height: number): PixelBox {
  return {
    x1: Math.max(0, box.x1),
    y1: Math.max(0, box.y1),
    x2: Math.min(width, box.x2),
    y2: Math.min(height, box.y2),
  };
}
