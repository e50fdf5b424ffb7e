import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { processCpuMs, processRssBytes } from "./proc.js";
import { REPO_ROOT } from "./cli.js";

/**
 * The service as users run it: its own process (`node --import tsx src/main.ts`), so its CPU and
 * memory are measured apart from the load generator, and every byte crosses a real socket.
 */
export interface ServerChild {
  pid: number;
  baseUrl: string;
  port: number;
  startupMs: number;
  startupCpuMs: number;
  /** Log lines at warn level or above, for the report. */
  warnings: string[];
  /** Memory after a forced GC in the server (see memory-probe.mjs). */
  memory(): Promise<MemorySnapshot>;
  stop(): Promise<void>;
}

export interface MemorySnapshot {
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

function memorySnapshotOf(line: string): MemorySnapshot | undefined {
  if (!line.startsWith('{"bench_memory"')) return undefined;
  const parsed: unknown = JSON.parse(line);
  if (typeof parsed !== "object" || parsed === null || !("bench_memory" in parsed)) return undefined;
  const m = parsed.bench_memory;
  if (typeof m !== "object" || m === null) return undefined;
  const num = (k: string) => (k in m ? Number((m as Record<string, unknown>)[k]) : Number.NaN);
  return { rss: num("rss"), heapUsed: num("heapUsed"), external: num("external"), arrayBuffers: num("arrayBuffers") };
}

const LISTENING = /listening on (https?:\/\/[^\s"]+)/;

export async function startServer(modelPath: string, env: Record<string, string> = {}): Promise<ServerChild> {
  const t0 = performance.now();
  // BENCH_SERVER_NODE_ARGS="--cpu-prof --cpu-prof-dir=bench/out/prof" profiles the server under load.
  const extra = (process.env.BENCH_SERVER_NODE_ARGS ?? "").split(" ").filter(Boolean);
  const probe = ["--expose-gc", "--import", "./bench/memory-probe.mjs"];
  const child = spawn(process.execPath, [...extra, "--import", "tsx", ...probe, "src/main.ts"], {
    cwd: REPO_ROOT,
    env: { ...process.env, PORT: "0", HOST: "127.0.0.1", MODEL_PATH: modelPath, LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const warnings: string[] = [];
  let memoryWaiter: ((m: MemorySnapshot) => void) | undefined;
  const stderr: string[] = [];
  createInterface({ input: child.stderr ?? process.stdin }).on("line", (l) => stderr.push(l));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not listen within 120 s; stderr: ${stderr.slice(-5).join(" | ")}`)), 120_000);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited (code ${code}) before listening: ${stderr.slice(-5).join(" | ")}`));
    });
    // Every line is read, not only until "listening": a full stdout pipe would stall the server.
    createInterface({ input: child.stdout ?? process.stdin }).on("line", (line) => {
      const mem = memorySnapshotOf(line);
      if (mem) {
        memoryWaiter?.(mem);
        memoryWaiter = undefined;
        return;
      }
      const m = LISTENING.exec(line);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      }
      if (/"level":(40|50|60)/.test(line) && warnings.length < 50) warnings.push(line.slice(0, 400));
    });
  });
  const pid = child.pid ?? -1;
  const startupMs = performance.now() - t0;
  return {
    pid,
    baseUrl: url,
    port: Number(new URL(url).port),
    startupMs,
    startupCpuMs: processCpuMs(pid),
    warnings,
    memory: () =>
      new Promise<MemorySnapshot>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("the server did not report its memory")), 10_000);
        memoryWaiter = (m) => {
          clearTimeout(timer);
          resolve(m);
        };
        child.kill("SIGUSR2");
      }),
    stop: () => stopChild(child),
  };
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    // SIGTERM drains gracefully; a server stuck past its own shutdown deadline is killed.
    const kill = setTimeout(() => child.kill("SIGKILL"), 20_000);
    child.once("exit", () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill("SIGTERM");
  });
}

/** Samples the server's RSS while a point runs, for its peak. */
export function rssSampler(pid: number, everyMs = 250): { stop(): number } {
  let peak = processRssBytes(pid);
  const t = setInterval(() => {
    try {
      peak = Math.max(peak, processRssBytes(pid));
    } catch {
      // the server exited; the point will report it
    }
  }, everyMs);
  return {
    stop() {
      clearInterval(t);
      return peak;
    },
  };
}
