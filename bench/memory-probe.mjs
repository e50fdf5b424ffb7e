// Preloaded into the server child (`--expose-gc --import ./bench/memory-probe.mjs`): on SIGUSR2 it
// collects garbage and prints one JSON line with the memory figures. Without a forced GC, RSS
// before/after a few hundred idle sessions is dominated by when V8 last collected, not by the
// sessions. It changes nothing else in the server.
//
// Plain JavaScript: Node passes --import on to worker threads (the ORT workers), which do not get
// the tsx loader.
import { isMainThread } from "node:worker_threads";

if (isMainThread) {
  process.on("SIGUSR2", () => {
    if (typeof globalThis.gc === "function") {
      globalThis.gc();
      globalThis.gc();
    }
    const m = process.memoryUsage();
    const line = { bench_memory: { rss: m.rss, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers } };
    process.stdout.write(`${JSON.stringify(line)}\n`);
  });
}
