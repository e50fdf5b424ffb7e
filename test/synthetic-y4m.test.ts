import { describe, expect, it } from "vitest";
import { encodeY4m, y4mFrame, y4mHeader } from "../src/synthetic/y4m.js";

/** A w×h frame of one colour. */
function solid(width: number, height: number, rgb: [number, number, number]) {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) data.set(rgb, i * 3);
  return { width, height, rgb: data };
}

describe("y4m writer (Chromium's fake camera format)", () => {
  it("writes the YUV4MPEG2 header, then FRAME and Y, U, V planes (4:2:0) per frame", () => {
    expect(new TextDecoder().decode(y4mHeader({ width: 4, height: 2, fps: 10 }))).toBe("YUV4MPEG2 W4 H2 F10:1 Ip A1:1 C420\n");
    const file = encodeY4m([solid(4, 2, [0, 0, 0]), solid(4, 2, [255, 255, 255])], 10);
    const header = "YUV4MPEG2 W4 H2 F10:1 Ip A1:1 C420\n".length;
    const frame = "FRAME\n".length + 4 * 2 + 2 * (2 * 1);
    expect(file.length).toBe(header + 2 * frame);
    expect(new TextDecoder().decode(file.subarray(header, header + 6))).toBe("FRAME\n");
  });

  it.each([
    ["black", [0, 0, 0], [16, 128, 128]],
    ["white", [255, 255, 255], [235, 128, 128]],
    ["red", [255, 0, 0], [82, 90, 240]],
    ["road grey", [110, 108, 104], [109, 126, 129]],
  ] as const)("converts %s with BT.601 limited range", (_name, rgb, yuv) => {
    const f = y4mFrame(solid(2, 2, [...rgb]));
    const planes = f.subarray("FRAME\n".length);
    expect([...planes]).toEqual([yuv[0], yuv[0], yuv[0], yuv[0], yuv[1], yuv[2]]);
  });

  it("refuses odd sizes and frames of different sizes", () => {
    expect(() => y4mHeader({ width: 3, height: 2, fps: 10 })).toThrow(RangeError);
    expect(() => encodeY4m([solid(2, 2, [0, 0, 0]), solid(4, 2, [0, 0, 0])], 10)).toThrow(RangeError);
  });
});
