import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const LISTENING = /listening on https?:\/\/[^:]+:(\d+)/;

/**
 * How the service is started: `npm start`, as the README and deploy/README.md tell operators, or
 * `node --import tsx src/main.ts`, the Dockerfile's CMD (node as the container's PID 1).
 */
export type Launch = "npm start" | "node";

export interface ServerProcess {
  /** The process that was started (npm, or node): the one an operator signals. */
  child: ChildProcess;
  /** Its port, once it serves the API ("listening on" comes after the model loaded); rejects if it exits first. */
  port: Promise<number>;
  /**
   * Its exit code (null when killed by a signal), once it has exited and every process that shares
   * its stdout (npm's script shell and node) has too: a server left running holds the pipe open.
   */
  exited: Promise<number | null>;
  /** Its stdout (JSON log lines) and stderr, as they came. */
  logs: string[];
  /** SIGTERM (graceful drain), then SIGKILL to the whole process group if it is still running after `graceMs`. */
  stop(graceMs?: number): Promise<number | null>;
  /** SIGKILL to the whole process group: cleanup after a failed test, orphans included. */
  kill(): void;
}

/**
 * Starts the service in its own process group, so signals and exit codes are real, `kill()` reaches
 * everything it started, and a test can stop and restart it on the same port (`PORT` in env; 0 picks one).
 */
export function startServerProcess(env: Record<string, string>, launch: Launch = "npm start"): ServerProcess {
  const [command, args] =
    launch === "npm start" ? ["npm", ["start"]] : [process.execPath, ["--import", "tsx", "src/main.ts"]];
  const child = spawn(command, args, {
    cwd: ROOT,
    env: { ...process.env, PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  const logs: string[] = [];
  // 'close' comes after the exit and the end of stdout and stderr, which the whole process tree shares.
  const exited = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
  const port = new Promise<number>((resolve, reject) => {
    // Every line is read, not only until "listening": a full stdout pipe would stall the server.
    createInterface({ input: child.stdout }).on("line", (line) => {
      logs.push(line);
      const m = LISTENING.exec(line);
      if (m) resolve(Number(m[1]));
    });
    child.stderr.on("data", (d: Buffer) => logs.push(d.toString()));
    void exited.then((code) => reject(new Error(`server exited early (${code}): ${logs.join("\n")}`)));
  });
  // A test that only awaits `exited` must not see an unhandled rejection of `port`.
  port.catch(() => undefined);
  let closed = false;
  void exited.then(() => (closed = true));
  const kill = () => {
    if (closed || child.pid === undefined) return;
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      // the group is already gone
    }
  };
  return {
    child,
    port,
    exited,
    logs,
    kill,
    async stop(graceMs = 20_000) {
      if (closed) return exited;
      const timer = setTimeout(kill, graceMs);
      child.kill("SIGTERM");
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}
