import { readdirSync, readFileSync } from "node:fs";
import { loadavg } from "node:os";

/**
 * Linux /proc readers for the server child. /proc/<pid>/stat of a thread-group leader sums every
 * thread, so ORT worker threads and libuv/sharp threads are all counted.
 */
const TICKS_PER_SECOND = 100; // USER_HZ; 100 on every Linux the bench runs on

/** utime + stime of a process, in milliseconds. */
export function processCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // The command name may contain spaces and parentheses: fields start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return ((utime + stime) * 1000) / TICKS_PER_SECOND;
}

/** Resident set size in bytes (VmRSS). */
export function processRssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  return m ? Number(m[1]) * 1024 : Number.NaN;
}

/** Busy CPU time of the whole machine (all cores), in ms: what every process used, ours included. */
export function machineBusyMs(): number {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "";
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  const busy = (v[0] ?? 0) + (v[1] ?? 0) + (v[2] ?? 0) + (v[5] ?? 0) + (v[6] ?? 0) + (v[7] ?? 0);
  return (busy * 1000) / TICKS_PER_SECOND;
}

export interface MachineLoad {
  uptime: string;
  loadavg: [number, number, number];
}

export function machineLoad(): MachineLoad {
  const [a = 0, b = 0, c = 0] = loadavg();
  const up = Number((readFileSync("/proc/uptime", "utf8").split(" ")[0] ?? "0"));
  return {
    uptime: `up ${Math.floor(up / 60)} min, load average: ${a.toFixed(2)}, ${b.toFixed(2)}, ${c.toFixed(2)}`,
    loadavg: [a, b, c],
  };
}

/** utime + stime of one thread, in ms. */
function threadCpuMs(pid: number, tid: string): { comm: string; ms: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
    const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { comm, ms: ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND };
  } catch {
    return undefined; // the thread ended between listing and reading
  }
}

/**
 * CPU per thread group: "main" is the event loop (tid == pid: JS, protocol framing, JSON), the
 * rest by thread name (libuv pool and vips threads run sharp; ORT runs in Node worker threads).
 * Threads that ended are missing, so use this for shares, processCpuMs for totals.
 */
export function threadCpuByGroup(pid: number): Map<string, number> {
  const groups = new Map<string, number>();
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return groups;
  }
  for (const tid of tids) {
    const t = threadCpuMs(pid, tid);
    if (!t) continue;
    const key = tid === String(pid) ? "main" : t.comm;
    groups.set(key, (groups.get(key) ?? 0) + t.ms);
  }
  return groups;
}

export function diffGroups(after: Map<string, number>, before: Map<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of after) out[k] = v - (before.get(k) ?? 0);
  return out;
}
