// Packs the training set for a GPU machine whose upload limit (64 MiB) is below the data set's 88 MB:
// train images re-encoded as WebP q80 (~22 KB each), val images copied unchanged so checkpoint
// selection sees exactly what the service sees. Never commit the output (it is the MIT data set).
//
//   node scripts/train/pack-data.mjs ../shared/testdata/train/road-damage-br .traindata/road-damage-br
import fs from "node:fs";
import path from "node:path";
import sharp from "sharp";

const [src, dst, quality = "80"] = process.argv.slice(2);
if (!src || !dst) throw new Error("usage: pack-data.mjs <src root> <dst root> [webp quality]");
fs.mkdirSync(path.join(dst, "images"), { recursive: true });
fs.mkdirSync(path.join(dst, "labels"), { recursive: true });
let bytes = 0;
for (const split of ["train.txt", "val.txt"]) {
  const out = [];
  for (const rel of fs.readFileSync(path.join(src, split), "utf8").split("\n").filter(Boolean)) {
    const stem = path.basename(rel).replace(/\.[^.]+$/, "");
    const label = path.join(src, rel.replace("images/", "labels/").replace(/\.[^.]+$/, ".txt"));
    if (fs.existsSync(label)) fs.copyFileSync(label, path.join(dst, "labels", `${stem}.txt`));
    let name;
    if (split === "train.txt") {
      name = `${stem}.webp`;
      const buf = await sharp(path.join(src, rel)).webp({ quality: Number(quality), effort: 4 }).toBuffer();
      fs.writeFileSync(path.join(dst, "images", name), buf);
      bytes += buf.length;
    } else {
      name = path.basename(rel);
      fs.copyFileSync(path.join(src, rel), path.join(dst, "images", name));
      bytes += fs.statSync(path.join(src, rel)).size;
    }
    out.push(`images/${name}`);
  }
  fs.writeFileSync(path.join(dst, split), out.join("\n") + "\n");
}
console.log(`packed into ${dst}: ${(bytes / 1e6).toFixed(1)} MB of images`);
