import { existsSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { basename, extname, join } from "node:path";
import { parseDatasetNames } from "./yolo-labels.js";

/** One labelled image of a YOLO data set. */
export interface DatasetItem {
  image: string;
  /** The label file; absent when the image has no objects (YOLO writes no file then). */
  labels: string;
}

export interface YoloDataset {
  root: string;
  /** Class names in the data set's numbering (data.yaml `names`). */
  names: string[];
  items: DatasetItem[];
}

const IMAGE = /\.(jpe?g|png|webp|bmp|tiff?)$/i;

function labelPathOf(root: string, relImage: string): string {
  // YOLO's convention: the same relative path with images/ → labels/ and a .txt extension.
  const rel = relImage.replace(/(^|\/)images\//, "$1labels/");
  return join(root, rel.slice(0, rel.length - extname(rel).length) + ".txt");
}

/**
 * Opens a YOLO data set: `root/data.yaml` for the names, and either a split file (lines of image
 * paths relative to `root`, e.g. val.txt) or, without one, every image under `root/images/`.
 */
export async function openYoloDataset(root: string, split?: string): Promise<YoloDataset> {
  const names = parseDatasetNames(await readFile(join(root, "data.yaml"), "utf8"));
  let rels: string[];
  if (split) {
    const text = await readFile(join(root, split), "utf8");
    rels = text.split("\n").map((l) => l.trim()).filter(Boolean);
  } else {
    rels = (await readdir(join(root, "images"))).filter((f) => IMAGE.test(f)).sort().map((f) => `images/${f}`);
  }
  const items = rels.map((rel) => ({ image: join(root, rel), labels: labelPathOf(root, rel) }));
  const missing = items.find((i) => !existsSync(i.image));
  if (missing) throw new Error(`${missing.image} is listed but not there`);
  return { root, names, items };
}

/** The split to evaluate when none is named: val.txt when the data set has one. */
export function defaultSplit(root: string): string | undefined {
  return existsSync(join(root, "val.txt")) ? "val.txt" : undefined;
}

export const itemName = (item: DatasetItem): string => basename(item.image);
