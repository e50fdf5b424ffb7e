import { createRng } from "./prng.js";

/**
 * 2-D value noise: random values on a lattice, smoothly interpolated. Cheap, seedable, and enough
 * for asphalt mottling and stain shapes; returns values in roughly [-1, 1].
 */
export type Noise2D = (x: number, y: number) => number;

const LATTICE = 256;

export function valueNoise(seed: number, cellSize: number): Noise2D {
  const rng = createRng(seed);
  const values = new Float32Array(LATTICE * LATTICE);
  for (let i = 0; i < values.length; i++) values[i] = rng.next() * 2 - 1;
  const at = (ix: number, iy: number): number =>
    values[((iy & (LATTICE - 1)) * LATTICE + (ix & (LATTICE - 1))) >>> 0]!;
  return (x, y) => {
    const fx = x / cellSize;
    const fy = y / cellSize;
    const ix = Math.floor(fx);
    const iy = Math.floor(fy);
    const tx = smooth(fx - ix);
    const ty = smooth(fy - iy);
    const top = at(ix, iy) + (at(ix + 1, iy) - at(ix, iy)) * tx;
    const bottom = at(ix, iy + 1) + (at(ix + 1, iy + 1) - at(ix, iy + 1)) * tx;
    return top + (bottom - top) * ty;
  };
}

/** Sum of octaves, each half the cell size and half the amplitude of the previous one. */
export function fractalNoise(seed: number, cellSize: number, octaves: number): Noise2D {
  const layers = Array.from({ length: octaves }, (_, i) => valueNoise(seed + i * 7919, cellSize / 2 ** i));
  let norm = 0;
  for (let i = 0; i < octaves; i++) norm += 0.5 ** i;
  // A plain loop: this runs for every pixel of every scene.
  return (x, y) => {
    let sum = 0;
    let amp = 1;
    for (const layer of layers) {
      sum += layer(x, y) * amp;
      amp *= 0.5;
    }
    return sum / norm;
  };
}

function smooth(t: number): number {
  return t * t * (3 - 2 * t);
}
