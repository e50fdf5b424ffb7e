import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../src/config.js";
import { credentialHeaders } from "../src/http/credentials.js";
import { decodeBase64, frameFromJson, parseJson } from "../src/http/json-input.js";
import { trimTrailingSlashes } from "../src/http/router.js";
import { ApiKeys, isLoopbackHost, ownerIdOf, presentedKey } from "../src/rpc/auth.js";
import type { NodeRequest } from "../src/http/node-types.js";

/** The input paths docs/SECURITY.md lists, as pure units: what each refuses and what it must not cost. */

describe("API keys", () => {
  const keys = new ApiKeys(["alpha-0123456789abcdef", "beta-0123456789abcdef"]);

  it("matches configured keys only, whatever their length", () => {
    expect(keys.matches("alpha-0123456789abcdef")).toBe(true);
    expect(keys.matches("beta-0123456789abcdef")).toBe(true);
    for (const wrong of ["", "alpha", "alpha-0123456789abcde", "alpha-0123456789abcdeff", "x".repeat(10_000)]) {
      expect(keys.matches(wrong)).toBe(false);
    }
    expect(new ApiKeys([]).enabled).toBe(false);
  });

  it("reads Bearer tokens (any case) before x-api-key; other schemes are not keys", () => {
    const h = (init: Record<string, string>) => presentedKey(new Headers(init));
    expect(h({ authorization: "Bearer k1" })).toBe("k1");
    expect(h({ authorization: "bearer   k1  " })).toBe("k1");
    expect(h({ authorization: "Bearer k1", "x-api-key": "k2" })).toBe("k1");
    expect(h({ authorization: "Basic dXNlcjpwYXNz", "x-api-key": "k2" })).toBe("k2");
    expect(h({ authorization: "Basic dXNlcjpwYXNz" })).toBeUndefined();
    expect(h({ "x-api-key": "  " })).toBeUndefined();
    expect(h({})).toBeUndefined();
  });

  it("owner ids are 128-bit hashes, never the key", () => {
    const id = ownerIdOf("alpha-0123456789abcdef");
    expect(id).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(id).toBe(ownerIdOf("alpha-0123456789abcdef"));
    expect(id).not.toBe(ownerIdOf("beta-0123456789abcdef"));
  });

  it("config refuses keys that are short or cannot travel in a header, without printing them", () => {
    for (const bad of ["short", "has space inside-0123456789", "tab\tinside-0123456789abc", "ünïcode-0123456789abcdef"]) {
      let err: unknown;
      try {
        loadConfig({ STREAMING_API_KEYS: bad });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).not.toContain(bad);
    }
    expect(loadConfig({ STREAMING_API_KEYS: " k-0123456789abcdef , k-0123456789abcdef,," }).access.apiKeys).toEqual(["k-0123456789abcdef"]);
    expect(loadConfig({}).access.apiKeys).toEqual([]);
  });

  it("knows loopback addresses (no warning there without keys)", () => {
    for (const h of ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"]) expect(isLoopbackHost(h)).toBe(true);
    for (const h of ["0.0.0.0", "::", "10.0.0.5", "example.com"]) expect(isLoopbackHost(h)).toBe(false);
  });

  it("forwards a query key as a header, and a value no header may carry in a form that fails the check", () => {
    const req = (headers: Record<string, string>) => ({ headers }) as unknown as NodeRequest;
    expect(credentialHeaders(req({}), new URLSearchParams("api_key=k1"))).toEqual({ "x-api-key": "k1" });
    expect(credentialHeaders(req({ "x-api-key": "k2" }), new URLSearchParams("api_key=k1"))).toEqual({ "x-api-key": "k2" });
    const forwarded = credentialHeaders(req({}), new URLSearchParams("api_key=a%0D%0AX-Injected:%201"));
    expect(() => new Headers(forwarded)).not.toThrow();
    expect(forwarded["x-api-key"]).not.toMatch(/[\r\n]/);
  });
});

describe("JSON and path input", () => {
  it("drops __proto__ keys at any depth, so no copy can pick up a prototype from a client", () => {
    const json = parseJson('{"fps_limit":5,"__proto__":{"polluted":1},"metadata":{"__proto__":{"x":1},"camera":"front"}}');
    expect(json).toEqual({ fps_limit: 5, metadata: { camera: "front" } });
    const frame = frameFromJson(parseJson('{"image_data":"AAAA","metadata":{"__proto__":{"admin":true},"a":1}}') as never);
    expect(Object.keys(frame.metadata ?? {})).toEqual(["a"]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("data: URL prefixes are stripped without a regex that can overflow", () => {
    const bytes = Buffer.from("hello frame");
    expect(Buffer.from(decodeBase64("image_data", `data:image/jpeg;base64,${bytes.toString("base64")}`))).toEqual(bytes);
    expect(Buffer.from(decodeBase64("image_data", `DATA:image/png;charset=x;BASE64,${bytes.toString("base64")}`))).toEqual(bytes);
    // A few million semicolons used to throw RangeError (a 500); now it is just invalid base64.
    const hostile = `data:${";".repeat(3_000_000)}`;
    expect(() => decodeBase64("image_data", hostile)).toThrow(/not valid base64/);
    expect(() => decodeBase64("image_data", "data:,")).toThrow(/not valid base64/);
  });

  it("trims trailing slashes in linear time", () => {
    expect(trimTrailingSlashes("/stream/stats///")).toBe("/stream/stats");
    expect(trimTrailingSlashes("///")).toBe("");
    const hostile = `${"/".repeat(200_000)}a`;
    expect(trimTrailingSlashes(hostile)).toBe(hostile);
  });
});
