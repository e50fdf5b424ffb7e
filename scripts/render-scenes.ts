/**
 * Writes synthetic road scenes with YOLO labels, for demos and for eyeballing the generator:
 *   tsx scripts/render-scenes.ts [outDir=test-artifacts/scenes] [count=8] [firstSeed=1] [WxH=640x480]
 * Layout: outDir/images/scene-<seed>.jpg and outDir/labels/scene-<seed>.txt (class cx cy w h, normalised).
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { encodeScene, HAZARD_CLASSES, renderRoadScene, type RoadScene } from "../src/synthetic/road-scene.js";

const [outDir = "test-artifacts/scenes", countArg = "8", seedArg = "1", sizeArg = "640x480"] = process.argv.slice(2);
const [width, height] = sizeArg.split("x").map(Number);
if (!width || !height) throw new Error(`size must look like 640x480, got ${sizeArg}`);

function yoloLabels(scene: RoadScene): string {
  return scene.boxes
    .map((b) => {
      const cx = (b.x1 + b.x2) / 2 / scene.width;
      const cy = (b.y1 + b.y2) / 2 / scene.height;
      const w = (b.x2 - b.x1) / scene.width;
      const h = (b.y2 - b.y1) / scene.height;
      return [b.classId, cx, cy, w, h].map((v, i) => (i === 0 ? String(v) : v.toFixed(6))).join(" ");
    })
    .join("\n");
}

await mkdir(join(outDir, "images"), { recursive: true });
await mkdir(join(outDir, "labels"), { recursive: true });
await writeFile(join(outDir, "classes.txt"), HAZARD_CLASSES.join("\n") + "\n");
for (let seed = Number(seedArg); seed < Number(seedArg) + Number(countArg); seed++) {
  const scene = renderRoadScene({ seed, width, height });
  await writeFile(join(outDir, "images", `scene-${seed}.jpg`), await encodeScene(scene, "jpeg", 90));
  await writeFile(join(outDir, "labels", `scene-${seed}.txt`), yoloLabels(scene) + "\n");
}
console.log(`wrote ${countArg} scenes to ${outDir}`);
