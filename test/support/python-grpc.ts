import { spawn, spawnSync } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

/**
 * Debian's python3-grpcio and python3-grpc-tools install for /usr/bin/python3, not for the
 * `python3` first on PATH.
 */
const PYTHON = "/usr/bin/python3";
const SCRIPT = fileURLToPath(new URL("./grpc_ops_client.py", import.meta.url));
const PROTO_ROOT = fileURLToPath(new URL("../../proto/", import.meta.url));

export const hasPythonGrpc =
  spawnSync(PYTHON, ["-c", "import grpc, grpc_tools.protoc, google.protobuf"], { stdio: "ignore" }).status === 0;
export const PYTHON_SKIP =
  "skipped: /usr/bin/python3 lacks grpc (apt-get install -y python3-grpcio python3-grpc-tools python3-protobuf)";

export type PythonOutput = Record<string, unknown>;

/** A running grpc_ops_client.py; each line it prints is one JSON object. */
export class PythonClient {
  readonly #lines: AsyncIterator<string>;
  readonly #stderr: string[] = [];
  readonly exited: Promise<number | null>;

  constructor(args: string[]) {
    const child = spawn(PYTHON, [SCRIPT, PROTO_ROOT, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => this.#stderr.push(chunk));
    this.#lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    this.exited = new Promise((resolve) => child.once("close", resolve));
  }

  /** The next object printed; fails with the client's stderr when it printed nothing more. */
  async next(): Promise<PythonOutput> {
    const line = await this.#lines.next();
    if (line.done) throw new Error(`python client ended early: ${this.#stderr.join("").slice(-2000)}`);
    return JSON.parse(line.value) as PythonOutput;
  }
}

/** Runs one command of the python client to its end and returns its single output. */
export async function runPython(args: string[]): Promise<PythonOutput> {
  const client = new PythonClient(args);
  const out = await client.next();
  expectExit(await client.exited);
  return out;
}

function expectExit(code: number | null): void {
  if (code !== 0) throw new Error(`python client exited with ${code}`);
}
