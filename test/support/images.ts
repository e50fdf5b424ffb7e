import zlib from "node:zlib";
import { encodeScene, renderRoadScene } from "../../src/synthetic/road-scene.js";

/** A generated road scene as JPEG bytes, with its ground truth. */
export async function sceneJpeg(seed: number, width = 640, height = 480) {
  const scene = renderRoadScene({ seed, width, height });
  return { bytes: new Uint8Array(await encodeScene(scene, "jpeg", 90)), boxes: scene.boxes, width, height };
}

function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(body) >>> 0);
  return Buffer.concat([len, body, crc]);
}

/**
 * A PNG whose header declares width×height pixels but whose data is a few bytes: the shape of a
 * decompression bomb, without the test having to allocate the pixels.
 */
export function hugePng(width = 20_000, height = 20_000): Uint8Array {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const idat = zlib.deflateSync(Buffer.alloc(1024));
  return new Uint8Array(
    Buffer.concat([
      Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
      chunk("IHDR", ihdr),
      chunk("IDAT", idat),
      chunk("IEND", Buffer.alloc(0)),
    ]),
  );
}

/** The bad frames every door must survive, each answered with INVALID_IMAGE. */
export async function badFrames(): Promise<Array<{ name: string; bytes: Uint8Array }>> {
  const good = (await sceneJpeg(7)).bytes;
  return [
    { name: "truncated-jpeg", bytes: good.subarray(0, Math.floor(good.length / 2)) },
    { name: "text-file", bytes: new TextEncoder().encode("this is a text file, not an image\n") },
    { name: "huge-png", bytes: hugePng() },
  ];
}
