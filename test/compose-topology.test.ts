import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { loadConfig } from "../src/config.js";

const DEPLOY = fileURLToPath(new URL("../deploy/", import.meta.url));

interface Service {
  image?: string;
  build?: unknown;
  network_mode?: string;
  ports?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  stop_grace_period?: string;
}

/**
 * deploy/compose.yaml cannot be run here (no container engine; see deploy/README.md), so this checks
 * that it agrees with the nginx configuration it mounts, which test/scale-out-nginx.test.ts runs:
 * the instances listen where the upstreams point, the published ports are the ones nginx listens on.
 */
describe("deploy/compose.yaml matches deploy/nginx/hazard-stream.conf", () => {
  it("instances on the upstreams' ports, in nginx's network namespace, with Redis; nginx's ports published; a stop grace above the drain", async () => {
    const compose = parse(await readFile(join(DEPLOY, "compose.yaml"), "utf8"), { merge: true }) as { services: Record<string, Service> };
    const conf = await readFile(join(DEPLOY, "nginx/hazard-stream.conf"), "utf8");
    const services = Object.entries(compose.services);
    const instances = services.filter(([, s]) => s.build !== undefined);
    const [nginxName, nginx] = services.find(([, s]) => s.image?.startsWith("nginx"))!;
    const [ownerName, owner] = services.find(([, s]) => s.ports !== undefined)!;
    expect(nginxName).toBeDefined();

    // (YAML merge keys, `<<: *instance`, as compose reads them.) One network namespace: every other service joins the one that publishes the ports.
    for (const [name, s] of services) if (name !== ownerName) expect(s.network_mode, name).toBe(`service:${ownerName}`);

    const upstreamPorts = new Set([...conf.matchAll(/^\s*server 127\.0\.0\.1:(\d+)/gm)].map((m) => m[1]));
    expect(new Set(instances.map(([, s]) => s.environment?.PORT))).toEqual(upstreamPorts);
    for (const [name, s] of instances) {
      expect(s.environment?.HOST, name).toBe("127.0.0.1");
      expect(s.environment?.REDIS_URL, name).toBe("redis://127.0.0.1:6379");
      expect(s.environment?.MAX_CONNECTIONS_PER_IP, name).toBe("0");
      // The service drains for SHUTDOWN_TIMEOUT_MS plus 2 s before it gives up.
      const graceMs = Number(/^(\d+)s$/.exec(s.stop_grace_period ?? "")?.[1]) * 1000;
      expect(graceMs, name).toBeGreaterThan(loadConfig({}).shutdownTimeoutMs + 2000);
    }

    const listens = [...conf.matchAll(/^\s*listen (\d+)/gm)].map((m) => m[1]);
    expect(owner.ports?.map((p) => p.split(":").at(-1))).toEqual(listens);

    const mount = nginx.volumes?.find((v) => v.startsWith("./nginx/hazard-stream.conf:"));
    expect(mount).toBe("./nginx/hazard-stream.conf:/etc/nginx/conf.d/default.conf:ro");
    await expect(stat(join(DEPLOY, "nginx/hazard-stream.conf"))).resolves.toBeDefined();
  });
});
