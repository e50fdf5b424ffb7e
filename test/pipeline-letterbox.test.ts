import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { letterbox, letterboxTensor, PAD_VALUE } from "../src/pipeline/letterbox.js";

describe("letterbox geometry matches Ultralytics LetterBox(auto=False, center=True)", () => {
  // Expected values computed with the Ultralytics code path in Python (round() is banker's rounding).
  const cases: Array<[string, [number, number, number, number], Omit<ReturnType<typeof letterbox>, "scale">]> = [
    ["square downscale", [720, 720, 640, 640], { width: 640, height: 640, top: 0, bottom: 0, left: 0, right: 0 }],
    ["16:9 into square", [1280, 720, 640, 640], { width: 640, height: 360, top: 140, bottom: 140, left: 0, right: 0 }],
    ["full HD", [1920, 1080, 640, 640], { width: 640, height: 360, top: 140, bottom: 140, left: 0, right: 0 }],
    ["no resize needed", [640, 480, 640, 640], { width: 640, height: 480, top: 80, bottom: 80, left: 0, right: 0 }],
    ["odd padding splits left 79 / right 80", [481, 640, 640, 640], { width: 481, height: 640, top: 0, bottom: 0, left: 79, right: 80 }],
    ["odd padding 119/120", [401, 640, 640, 640], { width: 401, height: 640, top: 0, bottom: 0, left: 119, right: 120 }],
    ["one-pixel-high strip", [1000, 1, 640, 640], { width: 640, height: 1, top: 319, bottom: 320, left: 0, right: 0 }],
    ["upscale tiny image", [3, 5, 640, 640], { width: 384, height: 640, top: 0, bottom: 0, left: 128, right: 128 }],
    ["non-square target", [1280, 720, 640, 384], { width: 640, height: 360, top: 12, bottom: 12, left: 0, right: 0 }],
    ["banker's rounding 2.5 -> 2", [1, 2, 5, 5], { width: 2, height: 5, top: 0, bottom: 0, left: 1, right: 2 }],
    ["banker's rounding 3.5 -> 4", [2, 4, 7, 7], { width: 4, height: 7, top: 0, bottom: 0, left: 1, right: 2 }],
    ["almost 16:9", [1279, 720, 640, 640], { width: 640, height: 360, top: 140, bottom: 140, left: 0, right: 0 }],
    // Not Ultralytics (it would resize to zero rows and fail): keep one row.
    ["extreme strip keeps one row", [20000, 1, 640, 640], { width: 640, height: 1, top: 319, bottom: 320, left: 0, right: 0 }],
  ];
  it.each(cases)("%s", (_name, [w, h, W, H], expected) => {
    const box = letterbox(w, h, W, H);
    expect(box).toMatchObject(expected);
    expect(box.scale).toBeCloseTo(Math.min(W / w, H / h), 12);
    expect(box.left + box.width + box.right).toBe(W);
    expect(box.top + box.height + box.bottom).toBe(H);
  });
});

describe("letterboxTensor", () => {
  it("makes a planar RGB 0..1 tensor with gray 114 padding around the resized image", async () => {
    // 4×2 pure red image into 8×8: resized to 8×4, 2 rows of padding above and below.
    const red = sharp({ create: { width: 4, height: 2, channels: 3, background: { r: 255, g: 0, b: 0 } } }).png();
    const image = sharp(await red.toBuffer());
    const box = letterbox(4, 2, 8, 8);
    expect(box).toMatchObject({ width: 8, height: 4, top: 2, bottom: 2, left: 0, right: 0 });
    const t = await letterboxTensor(image, box, 8, 8);
    expect(t.dims).toEqual([1, 3, 8, 8]);
    const px = (c: number, y: number, x: number): number => t.data[c * 64 + y * 8 + x];
    const gray = PAD_VALUE / 255;
    for (const c of [0, 1, 2]) {
      expect(px(c, 0, 0)).toBeCloseTo(gray, 6);
      expect(px(c, 7, 7)).toBeCloseTo(gray, 6);
    }
    expect([px(0, 3, 4), px(1, 3, 4), px(2, 3, 4)]).toEqual([1, 0, 0]);
  });

  it("drops alpha and expands grayscale to three channels", async () => {
    const rgba = await sharp({ create: { width: 2, height: 2, channels: 4, background: { r: 0, g: 0, b: 255, alpha: 0.5 } } })
      .png()
      .toBuffer();
    const t1 = await letterboxTensor(sharp(rgba), letterbox(2, 2, 4, 4), 4, 4);
    expect([t1.data[0], t1.data[16], t1.data[32]]).toEqual([0, 0, 1]);
    const grayPng = await sharp({ create: { width: 2, height: 2, channels: 3, background: { r: 51, g: 51, b: 51 } } })
      .toColourspace("b-w")
      .png()
      .toBuffer();
    const t2 = await letterboxTensor(sharp(grayPng), letterbox(2, 2, 4, 4), 4, 4);
    expect(t2.data).toHaveLength(48);
    expect(t2.data[0]).toBeCloseTo(0.2, 6);
    expect(t2.data[32]).toBeCloseTo(0.2, 6);
  });
});
