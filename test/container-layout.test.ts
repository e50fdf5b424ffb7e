import { execFile, spawn, type ChildProcess } from "node:child_process";
import { chmod, cp, mkdir, mkdtemp, readFile, rename, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dockerContextIncludes, parseDockerfile, type Stage } from "./support/dockerfile.js";
import { sceneJpeg } from "./support/images.js";
import { freePort } from "./support/nginx.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const run = promisify(execFile);

/** Runs `argv` as the image would: in `cwd` (its WORKDIR), with only the image's environment, as `uid`. */
function spawnAs(argv: string[], cwd: string, env: Record<string, string>, uid: number | undefined) {
  return spawn(argv[0]!, argv.slice(1), {
    cwd,
    env,
    stdio: ["ignore", "pipe", "pipe"],
    ...(uid === undefined ? {} : { uid, gid: uid }),
  });
}

/**
 * No container engine runs here (docker has no daemon; see deploy/README.md), so this replays the
 * Dockerfile outside one: the build context that .dockerignore lets through, the deps stage's RUN
 * (`npm ci --omit=dev …`) on the files it copies, the final stage's COPY layout under a temp WORKDIR,
 * then the image's CMD with the image's ENV as a user other than root, its HEALTHCHECK until it passes,
 * one Detect, the demo bundle, and SIGTERM; and `npm start` in that production install (issue 15: it
 * failed with "tsx: not found" while tsx was a devDependency). scripts/container-smoke.sh does the
 * same with a real image.
 */
describe("the Dockerfile's install, layout, CMD and HEALTHCHECK, replayed without a container engine", () => {
  let dir: string | undefined;
  let final: Stage;
  let appDir: string;
  // USER node: as root here, the image's CMD runs as nobody (who owns none of the files, as in the image).
  const uid = process.getuid?.() === 0 ? 65534 : undefined;

  beforeAll(async () => {
    const stages = parseDockerfile(await readFile(join(ROOT, "Dockerfile"), "utf8"));
    const dockerignore = await readFile(join(ROOT, ".dockerignore"), "utf8");
    final = stages.at(-1)!;
    dir = await mkdtemp(join(tmpdir(), "hazard-image-"));
    // The build context: tracked files that .dockerignore lets in (node_modules and local files never are).
    const tracked = (await run("git", ["ls-files", "-z"], { cwd: ROOT, maxBuffer: 16 << 20 })).stdout.split("\0").filter(Boolean);
    const context = tracked.filter((f) => dockerContextIncludes(dockerignore, f));
    expect(context).toContain("models/road-hazard-yolo.onnx");
    expect(context.some((f) => f.startsWith("test/") || f.startsWith("node_modules/"))).toBe(false);
    const stageDirs = new Map<string | undefined, string>();
    for (const [i, stage] of stages.entries()) {
      const root = join(dir, `stage${i}`);
      stageDirs.set(stage.name, root);
      await replayStage(stage, root, context, stageDirs);
    }
    appDir = join(stageDirs.get(final.name)!, final.workdir);
    if (uid !== undefined) await openUp(dir);
  }, 240_000);
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("the image's CMD, as non-root, turns healthy by its HEALTHCHECK, detects, serves the demo, drains on SIGTERM", async () => {
    expect(final.cmd).toEqual(["node", "--import", "tsx", "src/main.ts"]);
    expect(final.user).toBe("node");
    expect(final.healthcheck).toBeDefined();
    // What --omit=dev leaves out, the service must not need.
    await expect(stat(join(appDir, "node_modules/typescript"))).rejects.toThrow();
    await expect(stat(join(appDir, "node_modules/vitest"))).rejects.toThrow();

    const port = await freePort();
    const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", ...final.env, HOST: "127.0.0.1", PORT: String(port) };
    const server = started(spawnAs(final.cmd!, appDir, env, uid));
    try {
      // The image's HEALTHCHECK, as the engine would run it, until it passes.
      let healthy = false;
      for (let i = 0; i < 240 && !healthy && !server.gone(); i++) {
        const check = spawnAs(final.healthcheck!, appDir, env, uid);
        healthy = (await new Promise<number | null>((r) => check.once("close", r))) === 0;
        if (!healthy) await new Promise((r) => setTimeout(r, 500));
      }
      expect(healthy, server.log()).toBe(true);

      // The default model and the ONNX Runtime worker modules (src/inference/*.mjs) are found.
      const { bytes } = await sceneJpeg(41);
      const res = await fetch(`http://127.0.0.1:${port}/hazard.stream.v1.DetectionService/Detect`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ frame: { frameId: "image", imageData: Buffer.from(bytes).toString("base64") } }),
      });
      expect(res.status, server.log()).toBe(200);
      expect(await res.json()).toMatchObject({ result: { frameId: "image", imageWidth: 640, imageHeight: 480 } });
      expect(server.log()).toMatch(/road-hazard-yolo\.onnx/);

      // The demo page is bundled from src/web/page by esbuild, a production dependency, on request.
      const js = await fetch(`http://127.0.0.1:${port}/demo/demo.js`);
      expect(js.status).toBe(200);
      expect(js.headers.get("content-type")).toMatch(/^text\/javascript/);
      expect((await js.text()).length).toBeGreaterThan(1000);

      server.child.kill("SIGTERM");
      expect(await server.exited, server.log()).toBe(0);
      expect(server.log()).toMatch(/SIGTERM: draining streams[\s\S]*shutdown complete/);
    } finally {
      server.kill();
    }
  }, 120_000);

  it("`npm start` in the same production install answers /stream/health and drains on SIGTERM to npm", async () => {
    const port = await freePort();
    const server = started(
      spawn("npm", ["start"], { cwd: appDir, env: { ...process.env, HOST: "127.0.0.1", PORT: String(port) }, stdio: ["ignore", "pipe", "pipe"] }),
    );
    try {
      let status = 0;
      for (let i = 0; i < 240 && status !== 200 && !server.gone(); i++) {
        status = await fetch(`http://127.0.0.1:${port}/stream/health`).then((r) => r.status, () => 0);
        if (status !== 200) await new Promise((r) => setTimeout(r, 500));
      }
      expect(status, server.log()).toBe(200);
      server.child.kill("SIGTERM");
      expect(await server.exited, server.log()).toBe(0);
      expect(server.log()).toMatch(/shutdown complete/);
    } finally {
      server.kill();
    }
  }, 120_000);
});

/** A started server's log, its exit (once every process sharing its output is gone) and a cleanup kill. */
function started(child: ChildProcess) {
  const logs: string[] = [];
  createInterface({ input: child.stdout! }).on("line", (l) => logs.push(l));
  child.stderr!.on("data", (d: Buffer) => logs.push(d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
  let gone = false;
  void exited.then(() => (gone = true));
  return {
    child,
    exited,
    gone: () => gone,
    log: () => logs.join("\n"),
    kill: () => {
      if (!gone) child.kill("SIGKILL");
    },
  };
}

/** One stage: its COPY steps from the build context or an earlier stage, then its RUN steps, under `root`. */
async function replayStage(stage: Stage, root: string, context: string[], stageDirs: Map<string | undefined, string>): Promise<void> {
  const workdir = join(root, stage.workdir);
  await mkdir(workdir, { recursive: true });
  for (const copy of stage.copies) {
    const dest = join(workdir, copy.dest);
    if (copy.from !== undefined) {
      const fromRoot = stageDirs.get(copy.from);
      if (!fromRoot || copy.sources.length !== 1) throw new Error(`COPY --from=${copy.from}: not replayed`);
      await mkdir(dirname(dest), { recursive: true });
      await rename(join(fromRoot, copy.sources[0]!), dest);
      continue;
    }
    const toDir = copy.dest.endsWith("/") || copy.sources.length > 1;
    for (const source of copy.sources) {
      const files = context.filter((f) => f === source || f.startsWith(`${source}/`));
      if (files.length === 0) throw new Error(`COPY ${source}: not in the build context`);
      for (const f of files) {
        // A file copied into a directory keeps its name; a directory's contents land under dest.
        const target = toDir ? join(dest, relative(dirname(source), f)) : join(dest, relative(source, f));
        await mkdir(dirname(target), { recursive: true });
        await cp(join(ROOT, f), target);
      }
    }
  }
  // The build has the network (the npm registry) and the builder's environment.
  for (const cmd of stage.runs) await run("sh", ["-c", cmd], { cwd: workdir, maxBuffer: 16 << 20 });
}

/** Lets another user read and traverse the tree, as files in an image are readable to its USER. */
async function openUp(path: string): Promise<void> {
  await chmod(path, 0o755);
  await run("chmod", ["-R", "a+rX", path]);
}
