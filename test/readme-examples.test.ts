import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sceneJpeg } from "./support/images.js";
import { startServer, type TestServer } from "./support/server.js";

/**
 * The README's Quick start examples, taken from the README itself and run as written against a real
 * server (only its address and the photo's path put in), so the README cannot drift from the code.
 */
const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("../", import.meta.url));
const BIN = join(ROOT, "node_modules/.bin");

/** The body of the first fenced block of `lang` after the line that starts with `after`. */
function block(readme: string, after: string, lang: string): string {
  const start = readme.indexOf(`\n${after}`);
  if (start < 0) throw new Error(`README has no paragraph starting "${after}"`);
  const open = readme.indexOf("```" + lang + "\n", start);
  const close = readme.indexOf("\n```", open + 1);
  return readme.slice(open + lang.length + 4, close + 1);
}

describe("README Quick start examples, as written", () => {
  let server: TestServer;
  let readme: string;
  let dir: string;
  let photo: string;
  const here = (text: string) => text.replaceAll("http://127.0.0.1:8080", server.baseUrl).replaceAll("127.0.0.1:8080", server.address.address + ":" + server.address.port);

  beforeAll(async () => {
    server = await startServer();
    readme = await readFile(join(ROOT, "README.md"), "utf8");
    dir = await mkdtemp(join(tmpdir(), "hazard-readme-"));
    photo = join(dir, "road.jpg");
    await writeFile(photo, (await sceneJpeg(21)).bytes);
  });
  afterAll(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("the TypeScript stream example type-checks and prints one line per frame", async () => {
    const source = here(block(readme, "From TypeScript (Node)", "ts")).replaceAll('"road.jpg"', JSON.stringify(photo));
    // In the checkout's root, as the README says, so that ./gen/… resolves.
    const name = `.readme-stream-${process.pid}`;
    const file = join(ROOT, `${name}.ts`);
    const tsconfig = join(ROOT, `${name}.tsconfig.json`);
    try {
      await writeFile(file, source);
      await writeFile(tsconfig, JSON.stringify({ extends: "./tsconfig.json", include: [], files: [`./${name}.ts`] }));
      await run(join(BIN, "tsc"), ["--noEmit", "-p", tsconfig], { cwd: ROOT });
      const { stdout } = await run(join(BIN, "tsx"), [file], { cwd: ROOT, timeout: 60_000 });
      const lines = stdout.trim().split("\n");
      // Every frame answered; one that the busy test machine dropped says why.
      expect(lines.map((l) => l.split(" ")[0]).sort()).toEqual(["f1", "f2", "f3"]);
      expect(lines.find((l) => l.startsWith("f1 "))).toMatch(/^f1 (crack|pothole) 0\.\d\d track \d+/);
      for (const line of lines) expect(line).toMatch(/^f\d ((crack|pothole) 0\.\d\d track \d+|dropped: [A-Z_]+$)/);
    } finally {
      await rm(file, { force: true });
      await rm(tsconfig, { force: true });
    }
  }, 120_000);

  it("the buf curl examples print what the README shows", async () => {
    const body = block(readme, "Any gRPC tool works too", "sh");
    await writeFile(join(dir, "req.json"), JSON.stringify({ frame: { imageData: Buffer.from(await readFile(photo)).toString("base64"), frameId: "f1" } }));
    // Each command with the comment lines under it: what it printed when the README was written.
    const examples: Array<{ args: string[]; shown: string[] }> = [];
    for (const line of body.split("\n")) {
      if (line.startsWith("npx buf curl ")) examples.push({ args: line.slice("npx buf ".length).split(" "), shown: [] });
      else if (line.startsWith("# ")) examples.at(-1)?.shown.push(line.slice(2));
    }
    expect(examples.map((e) => e.args.at(-1))).toEqual([
      "http://127.0.0.1:8080",
      "http://127.0.0.1:8080",
      "http://127.0.0.1:8080/hazard.stream.v1.DetectionService/Detect",
      "http://127.0.0.1:8080/grpc.health.v1.Health/Check",
    ]);
    for (const { args, shown } of examples) {
      const argv = args.map((a) => here(a).replace(/^'(.*)'$/, "$1"));
      const { stdout } = await run(join(BIN, "buf"), argv, { cwd: dir, timeout: 60_000 });
      const printed = stdout.trimEnd().split("\n");
      // Lines shown are printed, in order; "…" stands for lines left out. Numbers of the Detect
      // answer differ with the photo, so there only the shape is compared.
      if (args.includes("--list-services")) expect(printed).toEqual(shown);
      else if (args.includes("--list-methods")) expect(printed).toEqual(expect.arrayContaining(shown.filter((l) => l !== "…")));
      else if (args.at(-1)?.endsWith("/Detect")) {
        const answer = JSON.parse(stdout) as { result: { frameId: string; detections: Array<Record<string, unknown>> } };
        expect(answer.result.frameId).toBe("f1");
        expect(Object.keys(answer.result.detections[0] ?? {})).toEqual(expect.arrayContaining(["bbox", "confidence", "className"]));
      } else expect(JSON.parse(stdout)).toEqual(JSON.parse(shown.join("\n")));
    }
  }, 120_000);
});
