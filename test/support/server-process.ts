import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const LISTENING = /listening on https?:\/\/[^:]+:(\d+)/;

export interface ServerProcess {
  child: ChildProcess;
  /** Its port, once it serves the API ("listening on" comes after the model loaded); rejects if it exits first. */
  port: Promise<number>;
  /** Its exit code (null when killed by a signal). */
  exited: Promise<number | null>;
  /** Its stdout (JSON log lines) and stderr, as they came. */
  logs: string[];
  /** SIGTERM (graceful drain), then SIGKILL if it is still running after `graceMs`. */
  stop(graceMs?: number): Promise<number | null>;
}

/**
 * Starts `src/main.ts` as `npm start` does, in its own process: signals (SIGTERM) and exit codes are
 * real, and a test can stop and restart it on the same port (`PORT` in env; 0 picks one).
 */
export function startServerProcess(env: Record<string, string>): ServerProcess {
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
    cwd: ROOT,
    env: { ...process.env, PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs: string[] = [];
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
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
  return {
    child,
    port,
    exited,
    logs,
    async stop(graceMs = 20_000) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      const kill = setTimeout(() => child.kill("SIGKILL"), graceMs);
      child.kill("SIGTERM");
      const code = await exited;
      clearTimeout(kill);
      return code;
    },
  };
}
