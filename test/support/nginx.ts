import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chown, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * nginx from the Debian package `nginx` or `nginx-light`: on PATH, or in /usr/sbin (not on a
 * non-root user's PATH). Undefined when neither answers `nginx -v` (which prints to stderr).
 */
export function findNginx(): { bin: string; version: string } | undefined {
  for (const bin of ["nginx", "/usr/sbin/nginx"]) {
    const r = spawnSync(bin, ["-v"], { encoding: "utf8" });
    const version = r.status === 0 ? /nginx\/(\S+)/.exec(r.stderr)?.[1] : undefined;
    if (version) return { bin, version };
  }
  return undefined;
}

/** A free TCP port on 127.0.0.1 (closed again, so a child process can bind it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer().once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

async function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

export interface Nginx {
  dir: string;
  /** nginx's stderr (its error log), for failure messages. */
  log: string[];
  stop(): Promise<void>;
}

export interface NginxOptions {
  /** The binary (from findNginx). */
  bin: string;
  /** http-level directives (upstreams, servers), included inside `http {}`. */
  site: string;
  /** More http-level directives, before the site (e.g. an `add_header` for the test to read). */
  httpExtra?: string;
  /** Ports the site listens on; start() resolves once each accepts connections. */
  ports: number[];
}

/** The Debian package's `nobody`/`nogroup`: who nginx runs as when the test runs as root. */
const NOBODY = 65534;

/**
 * Runs nginx in the foreground as an unprivileged process: its own prefix directory with the
 * config, pid file, logs and temp paths (`-p dir -c dir/nginx.conf`), nothing under /etc or /var.
 * When the test runs as root, nginx is started as nobody, so it cannot touch anything else either.
 */
export async function startNginx(opts: NginxOptions): Promise<Nginx> {
  const dir = await mkdtemp(join(tmpdir(), "hazard-nginx-"));
  const temp = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"];
  await Promise.all(temp.map((t) => mkdir(join(dir, t))));
  await writeFile(join(dir, "site.conf"), opts.site);
  await writeFile(
    join(dir, "nginx.conf"),
    [
      "daemon off;",
      "worker_processes 1;",
      `pid ${dir}/nginx.pid;`,
      "error_log stderr warn;",
      "events { worker_connections 512; }",
      "http {",
      `  access_log ${dir}/access.log;`,
      // The compiled-in temp paths are under /var/lib/nginx, which an unprivileged nginx cannot use.
      ...temp.map((t) => `  ${t}_temp_path ${dir}/${t};`),
      opts.httpExtra ?? "",
      `  include ${dir}/site.conf;`,
      "}",
      "",
    ].join("\n"),
  );
  const root = process.getuid?.() === 0;
  if (root) {
    const paths = [dir, ...temp.map((t) => join(dir, t))];
    await Promise.all(paths.map((p) => chown(p, NOBODY, NOBODY)));
  }
  const child: ChildProcess = spawn(opts.bin, ["-p", dir, "-c", join(dir, "nginx.conf")], {
    stdio: ["ignore", "ignore", "pipe"],
    ...(root ? { uid: NOBODY, gid: NOBODY } : {}),
  });
  const log: string[] = [];
  child.stderr?.on("data", (d: Buffer) => log.push(d.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`nginx exited at start (${child.exitCode}): ${log.join("")}`);
    }
    const up = await Promise.all(opts.ports.map(accepts));
    if (up.every(Boolean)) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`nginx did not listen on ${opts.ports.join(", ")} within 10 s: ${log.join("")}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { dir, log, stop };
}
