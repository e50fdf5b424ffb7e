/**
 * Reads the parts of the repository's Dockerfile and .dockerignore that a test replays without a
 * container engine: stages, their COPY and RUN steps, ENV, USER, HEALTHCHECK and CMD. Only the forms the
 * Dockerfile uses are understood; anything else throws, so a change there shows up here.
 */

export interface Copy {
  /** `--from=<stage>`, when the files come from an earlier stage. */
  from?: string;
  sources: string[];
  dest: string;
}

export interface Stage {
  name?: string;
  workdir: string;
  copies: Copy[];
  runs: string[];
  env: Record<string, string>;
  user?: string;
  /** Exec form only (`CMD ["node", …]`), as signals need. */
  cmd?: string[];
  healthcheck?: string[];
}

/** The instructions of `text`, comments dropped and `\` continuations joined. */
function instructions(text: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  let pending = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (pending === "" && (line === "" || line.startsWith("#"))) continue;
    if (line.endsWith("\\")) {
      pending += line.slice(0, -1) + " ";
      continue;
    }
    const full = (pending + line).trim();
    pending = "";
    const m = /^(\w+)\s+(.*)$/s.exec(full);
    if (!m) throw new Error(`Dockerfile: cannot read "${full}"`);
    out.push([m[1]!.toUpperCase(), m[2]!]);
  }
  return out;
}

function execForm(value: string, what: string): string[] {
  const parsed: unknown = JSON.parse(value);
  if (!Array.isArray(parsed) || !parsed.every((a) => typeof a === "string")) throw new Error(`${what} is not exec form: ${value}`);
  return parsed;
}

export function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  const args: Record<string, string> = {};
  for (const [op, rest] of instructions(text)) {
    const stage = stages.at(-1);
    if (op === "ARG" && !stage) {
      const [k, v = ""] = rest.split("=", 2);
      args[k!] = v;
    } else if (op === "FROM") {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest);
      if (!m) throw new Error(`FROM: ${rest}`);
      stages.push({ ...(m[2] ? { name: m[2] } : {}), workdir: "/", copies: [], runs: [], env: {} });
    } else if (!stage) {
      throw new Error(`${op} before FROM`);
    } else if (op === "WORKDIR") {
      stage.workdir = rest;
    } else if (op === "COPY") {
      const words = rest.split(/\s+/);
      const from = words[0]?.startsWith("--from=") ? words.shift()!.slice("--from=".length) : undefined;
      if (words.some((w) => w.startsWith("--"))) throw new Error(`COPY option not understood: ${rest}`);
      const dest = words.pop()!;
      stage.copies.push({ ...(from ? { from } : {}), sources: words, dest });
    } else if (op === "RUN") {
      stage.runs.push(rest);
    } else if (op === "ENV") {
      for (const pair of rest.split(/\s+/)) {
        const [k, v] = pair.split("=", 2);
        if (v === undefined || /["']/.test(v)) throw new Error(`ENV needs unquoted key=value pairs: ${rest}`);
        stage.env[k!] = v;
      }
    } else if (op === "USER") {
      stage.user = rest;
    } else if (op === "CMD") {
      stage.cmd = execForm(rest, "CMD");
    } else if (op === "HEALTHCHECK") {
      const m = /\bCMD\s+(\[.*\])$/s.exec(rest);
      if (!m) throw new Error(`HEALTHCHECK needs an exec-form CMD: ${rest}`);
      stage.healthcheck = execForm(m[1]!, "HEALTHCHECK CMD");
    } else if (op !== "EXPOSE" && op !== "STOPSIGNAL" && op !== "LABEL" && op !== "ARG") {
      throw new Error(`Dockerfile instruction not replayed by the test: ${op}`);
    }
  }
  return stages;
}

/**
 * Whether .dockerignore lets `path` (relative, `/`-separated) into the build context. Patterns are
 * matched in order, the last match wins; `*` stays within one path segment; a pattern also covers
 * everything under a directory it names.
 */
export function dockerContextIncludes(dockerignore: string, path: string): boolean {
  let included = true;
  for (const raw of dockerignore.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const negate = line.startsWith("!");
    const pattern = (negate ? line.slice(1) : line).replace(/^\/+|\/+$/g, "");
    if (pattern.includes("**") || /[?[\]]/.test(pattern)) throw new Error(`.dockerignore pattern not understood: ${line}`);
    const re = new RegExp(`^${pattern.split("*").map((s) => s.replace(/[.+^${}()|\\]/g, "\\$&")).join("[^/]*")}(/.*)?$`);
    if (re.test(path)) included = negate;
  }
  return included;
}
