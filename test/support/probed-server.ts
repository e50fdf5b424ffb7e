import { readdirSync, readFileSync } from "node:fs";
import { startServerProcess, type ServerProcess } from "./server-process.js";

/**
 * The server as its own process (`src/main.ts`), watched from outside like an operator would: its
 * resident memory and open file descriptors from /proc, its memory after a forced GC (the bench's
 * memory probe, preloaded: SIGUSR2 → two GCs → one JSON line on stdout), and its log for faults.
 * For the fuzz and soak tests, which must see a crash, a leak or an unhandled rejection that an
 * in-process server would hide or share with the test runner.
 */

export interface Settled {
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

export interface ProbedServer {
  proc: ServerProcess;
  pid: number;
  baseUrl: string;
  port: number;
  /** Still running. */
  alive(): boolean;
  /** VmRSS now, bytes. */
  rss(): number;
  /** Open file descriptors (sockets, pipes, files) now. */
  fds(): number;
  /** Memory after two forced GCs in the server. */
  settle(): Promise<Settled>;
  /**
   * Log lines that mean something went wrong inside the server: error and fatal entries, an
   * unhandled rejection or uncaught exception, and anything on stderr (Node's warnings and crash
   * traces go there; the service logs JSON on stdout).
   */
  faults(): string[];
  stop(): Promise<number | null>;
}

const MEMORY_LINE = '{"bench_memory"';

export async function startProbedServer(env: Record<string, string>): Promise<ProbedServer> {
  // node itself, not `npm start`: the probes read this pid's /proc (npm's own process would be measured
  // instead, and NODE_OPTIONS would load the probe into npm too).
  const proc = startServerProcess({
    ...env,
    // --expose-gc and the probe through NODE_OPTIONS.
    NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --expose-gc --import ./bench/memory-probe.mjs`.trim(),
  }, "node");
  const port = await proc.port;
  const pid = proc.child.pid ?? -1;
  return {
    proc,
    pid,
    port,
    baseUrl: `http://127.0.0.1:${port}`,
    alive: () => proc.child.exitCode === null && proc.child.signalCode === null,
    rss() {
      const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
      return m ? Number(m[1]) * 1024 : Number.NaN;
    },
    fds: () => readdirSync(`/proc/${pid}/fd`).length,
    async settle() {
      const seen = proc.logs.length;
      proc.child.kill("SIGUSR2");
      const deadline = Date.now() + 15_000;
      for (;;) {
        const line = proc.logs.slice(seen).find((l) => l.startsWith(MEMORY_LINE));
        if (line) return (JSON.parse(line) as { bench_memory: Settled }).bench_memory;
        if (Date.now() > deadline) throw new Error("the server did not report its memory");
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    // server-process.ts keeps stderr chunks in `logs` too: they are the lines that are not JSON.
    faults: () =>
      proc.logs.filter((l) => /"level":(50|60)\b/.test(l) || /unhandled|uncaught/i.test(l) || (!l.startsWith("{") && l.trim() !== "")),
    stop: () => proc.stop(),
  };
}

/** Bytes as MiB with one decimal, for the figures the tests print. */
export const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
