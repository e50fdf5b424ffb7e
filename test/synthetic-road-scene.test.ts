import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { crackBox, type CrackPose } from "../src/synthetic/crack.js";
import { potholeBox, type PotholePose } from "../src/synthetic/pothole.js";
import { createRng, deriveSeed } from "../src/synthetic/prng.js";
import { encodeScene, HAZARD_CLASSES, renderRoadScene } from "../src/synthetic/road-scene.js";

describe("renderRoadScene", () => {
  it("is a pure function of its options", () => {
    const a = renderRoadScene({ seed: 7 });
    const b = renderRoadScene({ seed: 7 });
    expect(a.rgb.equals(b.rgb)).toBe(true);
    expect(a.boxes).toEqual(b.boxes);
    expect(renderRoadScene({ seed: 8 }).rgb.equals(a.rgb)).toBe(false);
  });

  it("labels every hazard with a box inside the image", () => {
    for (const seed of [1, 2, 3, 4, 5, 6]) {
      const scene = renderRoadScene({ seed, width: 512, height: 384, potholes: 3, cracks: 2 });
      expect(scene.rgb.length).toBe(512 * 384 * 3);
      expect(scene.boxes.length).toBeGreaterThan(0);
      for (const b of scene.boxes) {
        expect(b.className).toBe(HAZARD_CLASSES[b.classId]);
        expect(b.x1).toBeGreaterThanOrEqual(0);
        expect(b.y1).toBeGreaterThanOrEqual(0);
        expect(b.x2).toBeLessThanOrEqual(512);
        expect(b.y2).toBeLessThanOrEqual(384);
        expect(b.x2 - b.x1).toBeGreaterThan(2);
        expect(b.y2 - b.y1).toBeGreaterThan(2);
      }
    }
  });

  it("places the requested number of hazards when there is room", () => {
    const scene = renderRoadScene({ seed: 11, potholes: 2, cracks: 1 });
    expect(scene.boxes.filter((b) => b.className === "pothole")).toHaveLength(2);
    expect(scene.boxes.filter((b) => b.className === "crack")).toHaveLength(1);
    expect(renderRoadScene({ seed: 11, potholes: 0, cracks: 0 }).boxes).toEqual([]);
  });

  it("draws a pothole darker than the road around it", () => {
    const scene = renderRoadScene({ seed: 3, potholes: 1, cracks: 0 });
    const [box] = scene.boxes;
    const luma = (x: number, y: number): number => {
      const i = (Math.round(y) * scene.width + Math.round(x)) * 3;
      return (scene.rgb[i]! + scene.rgb[i + 1]! + scene.rgb[i + 2]!) / 3;
    };
    const cx = (box!.x1 + box!.x2) / 2;
    const cy = (box!.y1 + box!.y2) / 2;
    expect(luma(cx, cy)).toBeLessThan(0.75 * luma(cx, Math.max(0, box!.y1 - 25)) + 5);
  });
});

describe("hazard poses", () => {
  // Driving sequences will move hazards between frames: the box must follow the pose exactly.
  it("moves a hazard's box with its pose and keeps its shape", () => {
    const pothole: PotholePose = { seed: 5, cx: 100, cy: 80, size: 60, aspect: 1.3, angle: 0.4, depth: 0.4 };
    const moved = potholeBox({ ...pothole, cx: 130, cy: 70 });
    const base = potholeBox(pothole);
    expect(moved.x1 - base.x1).toBeCloseTo(30, 6);
    expect(moved.y2 - base.y2).toBeCloseTo(-10, 6);
    const crack: CrackPose = { seed: 9, cx: 200, cy: 150, length: 180, angle: 0.3, width: 3, depth: 0.5 };
    const grown = crackBox({ ...crack, length: 360 });
    const b = crackBox(crack);
    // Doubling the length doubles the extent (minus the constant line-width padding).
    expect(grown.x2 - grown.x1 - crack.width).toBeCloseTo(2 * (b.x2 - b.x1 - crack.width), 6);
  });
});

describe("encodeScene", () => {
  it("encodes to decodable JPEG, PNG and WebP of the scene's size; PNG is lossless", async () => {
    const scene = renderRoadScene({ seed: 1, width: 320, height: 240 });
    for (const format of ["jpeg", "png", "webp"] as const) {
      const { data, info } = await sharp(await encodeScene(scene, format, 85)).raw().toBuffer({ resolveWithObject: true });
      expect([info.width, info.height, info.format]).toEqual([320, 240, "raw"]);
      if (format === "png") expect(data.equals(scene.rgb)).toBe(true);
    }
  });
});

describe("prng", () => {
  it("repeats for a seed, and derived seeds are independent of each other", () => {
    const a = createRng(42);
    const b = createRng(42);
    const xs = Array.from({ length: 5 }, () => a.next());
    expect(Array.from({ length: 5 }, () => b.next())).toEqual(xs);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    expect(deriveSeed(1, 2)).not.toBe(deriveSeed(1, 3));
    expect(deriveSeed(1, 2)).toBe(deriveSeed(1, 2));
  });
});
