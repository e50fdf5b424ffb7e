import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sceneJpeg } from "./support/images.js";
import { startServer, type TestServer } from "./support/server.js";

/**
 * The web client as another app gets it: `npm pack` in packages/client (its prepack builds dist/ from
 * src/client and gen/), the tarball installed into a fresh app with `npm install`, then imported by
 * package name from Node ESM, type-checked and bundled for a browser as the README shows.
 */
const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("../", import.meta.url));
const PACKAGE = join(ROOT, "packages/client");
const BIN = join(ROOT, "node_modules/.bin");
/** What the client imports at run time: all the package may depend on. */
const CLIENT_DEPS = ["@bufbuild/protobuf", "@connectrpc/connect", "@connectrpc/connect-web"];

describe("the web client package (packages/client, npm pack + npm install)", () => {
  let server: TestServer;
  let dir: string;
  let app: string;
  let entries: string[];

  beforeAll(async () => {
    server = await startServer();
    dir = await mkdtemp(join(tmpdir(), "hazard-pack-"));
    const { stdout } = await run("npm", ["pack", "--pack-destination", dir], { cwd: PACKAGE, timeout: 180_000 });
    const tarball = join(dir, stdout.trim().split("\n").at(-1) ?? "");
    entries = (await run("tar", ["tzf", tarball])).stdout.trim().split("\n");
    app = join(dir, "app");
    await mkdir(app);
    await writeFile(join(app, "package.json"), JSON.stringify({ name: "my-app", private: true, type: "module" }));
    // --prefer-offline: the dependencies are in npm's cache after `npm ci` of this repository; the
    // registry is asked only for what the cache lacks.
    await run("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", tarball], { cwd: app, timeout: 180_000 });
  }, 360_000);
  afterAll(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("holds the compiled client and generated API with their types, and nothing of the service", () => {
    for (const file of ["dist/src/client/index.js", "dist/src/client/index.d.ts", "dist/gen/hazard/stream/v1/types_pb.js", "dist/gen/hazard/stream/v1/types_pb.d.ts"]) {
      expect(entries).toContain(`package/${file}`);
    }
    expect(entries).toContain("package/package.json");
    expect(entries.filter((e) => /^package\/(src|gen|models|test|proto)\//.test(e))).toEqual([]);
    // Of src/, only the client and the JSON message types it shares with the server.
    expect(entries.filter((e) => e.startsWith("package/dist/src/") && !/^package\/dist\/src\/(client\/|http\/json-(messages|resources)\.)/.test(e))).toEqual([]);
    expect(entries.filter((e) => e.endsWith(".ts") && !e.endsWith(".d.ts"))).toEqual([]);
  });

  it("installs with only the client's own dependencies, in the service's version ranges", async () => {
    const installed: string[] = [];
    for (const name of await readdir(join(app, "node_modules"))) {
      if (name.startsWith(".")) continue;
      if (!name.startsWith("@")) installed.push(name);
      else for (const sub of await readdir(join(app, "node_modules", name))) installed.push(`${name}/${sub}`);
    }
    expect(installed.sort()).toEqual(["@hazard-stream/client", ...CLIENT_DEPS].sort());
    const pkg = JSON.parse(await readFile(join(PACKAGE, "package.json"), "utf8")) as { dependencies: Record<string, string> };
    const root = JSON.parse(await readFile(join(ROOT, "package.json"), "utf8")) as { dependencies: Record<string, string> };
    expect(pkg.dependencies).toEqual(Object.fromEntries(CLIENT_DEPS.map((d) => [d, root.dependencies[d]])));
  });

  it("imports by package name from Node ESM and detects hazards through a real server", async () => {
    await writeFile(join(dir, "road.jpg"), (await sceneJpeg(21)).bytes);
    await writeFile(
      join(app, "detect.mjs"),
      `import { readFile } from "node:fs/promises";
import { HazardStreamClient, errorCodeName, errorCodeOf } from "@hazard-stream/client";
import { DetectionService } from "@hazard-stream/client/gen/hazard/stream/v1/detection_service_pb.js";
const [baseUrl, photo] = process.argv.slice(2);
const rpc = new HazardStreamClient({ baseUrl, protocol: "connect" });
const result = await rpc.detect({ image: await readFile(photo), frameId: "pkg" });
const bad = await rpc.detect({ image: new Uint8Array([1, 2, 3]) }).catch((err) => errorCodeName(errorCodeOf(err)));
console.log(JSON.stringify({ service: DetectionService.typeName, frameId: result.frameId, found: result.detections.length, bad }));
`,
    );
    const { stdout } = await run("node", ["detect.mjs", server.baseUrl, join(dir, "road.jpg")], { cwd: app, timeout: 60_000 });
    const out = JSON.parse(stdout) as { service: string; frameId: string; found: number; bad: string };
    expect(out).toMatchObject({ service: "hazard.stream.v1.DetectionService", frameId: "pkg", bad: "INVALID_IMAGE" });
    expect(out.found).toBeGreaterThan(0);
  }, 120_000);

  it("the README's browser app type-checks against the package's .d.ts and bundles with esbuild", async () => {
    const readme = await readFile(join(ROOT, "README.md"), "utf8");
    const start = readme.indexOf("**As a package**");
    const open = readme.indexOf("```ts\n", start);
    await writeFile(join(app, "main.ts"), readme.slice(open + 6, readme.indexOf("\n```", open) + 1));
    await writeFile(
      join(app, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "ES2022",
          module: "ESNext",
          moduleResolution: "Bundler",
          lib: ["ES2023", "DOM", "DOM.Iterable"],
          types: [],
          strict: true,
          noEmit: true,
          skipLibCheck: true,
        },
        files: ["main.ts"],
      }),
    );
    await run(join(BIN, "tsc"), ["-p", "tsconfig.json"], { cwd: app, timeout: 120_000 });
    await run(join(BIN, "esbuild"), ["main.ts", "--bundle", "--format=esm", "--platform=browser", "--outfile=public/main.js"], { cwd: app });
    const bundle = await readFile(join(app, "public/main.js"), "utf8");
    // Resolved through the package's exports, and its dependencies from the app's own node_modules
    // (esbuild names each bundled module in a comment).
    expect(bundle).toContain("node_modules/@hazard-stream/client/dist/src/client/hazard-client.js");
    expect(bundle).toContain("node_modules/@hazard-stream/client/dist/gen/hazard/stream/v1/types_pb.js");
    expect(bundle).toContain("node_modules/@connectrpc/connect-web/");
    expect(bundle).not.toMatch(/from\s*"node:/);
  }, 180_000);
});
