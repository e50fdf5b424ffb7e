import { parse as parseYaml } from "yaml";
import { firstLine } from "./error-text.js";

/**
 * What Ultralytics writes about a model. Every field is optional: exports from other tools carry
 * none of it, and the loader falls back to the model's input shape then.
 */
export interface UltralyticsMetadata {
  classNames?: string[];
  /** Training input size; Ultralytics writes it as [height, width]. */
  imgsz?: { width: number; height: number };
  stride?: number;
  description?: string;
}

/** The model file carries metadata that cannot be understood; the message says which key. */
export class ModelMetadataError extends Error {
  override name = "ModelMetadataError";
}

// Caps keep a hostile or corrupt file from costing more than a glance.
const MAX_TEXT = 1 << 20;
const MAX_CLASSES = 10_000;
const MAX_SIDE = 16_384;

/** Reads the ONNX `metadata_props` entries Ultralytics writes (all values are Python `str()` output). */
export function parseOnnxMetadata(props: ReadonlyMap<string, string>): UltralyticsMetadata {
  const out: UltralyticsMetadata = {};
  const names = props.get("names");
  if (names !== undefined) out.classNames = parsePythonNames(names);
  const imgsz = props.get("imgsz");
  if (imgsz !== undefined) out.imgsz = parseImgsz(imgsz);
  const stride = props.get("stride");
  if (stride !== undefined) out.stride = parseStride(stride);
  const description = props.get("description");
  if (description !== undefined) out.description = description;
  return out;
}

/** Reads the `metadata.yaml` Ultralytics writes beside an OpenVINO IR. */
export function parseMetadataYaml(text: string): UltralyticsMetadata {
  if (text.length > MAX_TEXT) throw new ModelMetadataError("metadata.yaml is larger than 1 MiB");
  let doc: unknown;
  try {
    // Aliases are the YAML bomb vector; Ultralytics never writes any.
    doc = parseYaml(text, { maxAliasCount: 0, prettyErrors: false });
  } catch (e) {
    throw new ModelMetadataError(`metadata.yaml is not valid YAML: ${firstLine(e)}`);
  }
  if (doc === null || doc === undefined) return {};
  if (!isRecord(doc)) throw new ModelMetadataError("metadata.yaml is not a mapping of keys to values");
  const out: UltralyticsMetadata = {};
  if (doc.names !== undefined) out.classNames = namesFromValue(doc.names);
  if (doc.imgsz !== undefined) out.imgsz = imgszFromValue(doc.imgsz);
  if (doc.stride !== undefined) out.stride = parseStride(String(doc.stride));
  if (typeof doc.description === "string") out.description = doc.description;
  return out;
}

/**
 * Parses a Python literal of class names: a dict `{0: 'crack', 1: "driver's view"}` (what Ultralytics
 * writes) or a list `['crack', 'pothole']`. Ids missing from a dict get a `classN` placeholder so
 * indices stay aligned with the model's outputs.
 */
export function parsePythonNames(text: string): string[] {
  if (text.length > MAX_TEXT) throw new ModelMetadataError("metadata 'names' is larger than 1 MiB");
  const lexer = new PythonLiteralLexer(text);
  const open = lexer.next();
  if (open.kind !== "punct" || (open.value !== "{" && open.value !== "[")) {
    throw lexer.error("expected '{' or '['");
  }
  const isDict = open.value === "{";
  const close = isDict ? "}" : "]";
  const byId = new Map<number, string>();
  let tok = lexer.next();
  while (!(tok.kind === "punct" && tok.value === close)) {
    let id = byId.size;
    if (isDict) {
      if (tok.kind !== "int") throw lexer.error("expected an integer class id");
      id = tok.value;
      const colon = lexer.next();
      if (colon.kind !== "punct" || colon.value !== ":") throw lexer.error("expected ':'");
      tok = lexer.next();
    }
    if (tok.kind !== "string") throw lexer.error("expected a quoted class name");
    if (id >= MAX_CLASSES) throw lexer.error(`class id ${id} is too large`);
    if (byId.has(id)) throw lexer.error(`class id ${id} appears twice`);
    byId.set(id, tok.value);
    tok = lexer.next();
    if (tok.kind === "punct" && tok.value === ",") tok = lexer.next();
    else if (!(tok.kind === "punct" && tok.value === close)) throw lexer.error(`expected ',' or '${close}'`);
  }
  if (lexer.next().kind !== "end") throw lexer.error("unexpected text after the closing bracket");
  return denseNames(byId);
}

/** Parses `imgsz`: `640`, `[640, 640]` or `(480, 640)` — the pair is [height, width]. */
export function parseImgsz(text: string): { width: number; height: number } {
  const trimmed = text.trim();
  const inner = /^[[(].*[\])]$/s.test(trimmed) ? trimmed.slice(1, -1) : trimmed;
  const parts = inner.split(",").map((p) => p.trim()).filter((p) => p !== "");
  return imgszFromValue(parts.map((p) => (/^\d+$/.test(p) ? Number(p) : p)));
}

function parseStride(text: string): number {
  const t = text.trim();
  // Some exports write a tensor-ish `[8, 16, 32]`; the largest stride is the one that constrains sizes.
  const values = (t.startsWith("[") && t.endsWith("]") ? t.slice(1, -1) : t).split(",").map((s) => s.trim());
  const nums = values.map(Number);
  if (nums.length === 0 || nums.some((n) => !Number.isInteger(n) || n < 1 || n > 1024)) {
    throw new ModelMetadataError(`metadata 'stride' is not a positive integer: ${clip(text)}`);
  }
  return Math.max(...nums);
}

function imgszFromValue(v: unknown): { width: number; height: number } {
  const list = Array.isArray(v) ? v : [v];
  const sides = list.map((s) => (typeof s === "string" && /^\d+$/.test(s.trim()) ? Number(s) : s));
  const valid = (s: unknown): s is number => typeof s === "number" && Number.isInteger(s) && s >= 1 && s <= MAX_SIDE;
  if ((sides.length !== 1 && sides.length !== 2) || !sides.every(valid)) {
    throw new ModelMetadataError(`metadata 'imgsz' is not a size or a [height, width] pair: ${clip(JSON.stringify(v) ?? "")}`);
  }
  const [height, width = height] = sides;
  return { width, height };
}

function namesFromValue(v: unknown): string[] {
  if (typeof v === "string") return parsePythonNames(v);
  if (!Array.isArray(v) && !isRecord(v)) throw new ModelMetadataError("metadata 'names' is neither a mapping nor a list");
  const entries: Array<[unknown, unknown]> = Array.isArray(v) ? v.map((n, i) => [i, n]) : Object.entries(v);
  const byId = new Map<number, string>();
  for (const [key, name] of entries) {
    const id = typeof key === "number" ? key : /^\d+$/.test(String(key)) ? Number(key) : NaN;
    if (!Number.isInteger(id) || id >= MAX_CLASSES) throw new ModelMetadataError(`metadata 'names' has a bad class id: ${clip(String(key))}`);
    if (typeof name !== "string" && typeof name !== "number" && typeof name !== "boolean") {
      throw new ModelMetadataError(`metadata 'names' entry ${id} is not a name`);
    }
    byId.set(id, String(name));
  }
  return denseNames(byId);
}

function denseNames(byId: ReadonlyMap<number, string>): string[] {
  const count = byId.size === 0 ? 0 : Math.max(...byId.keys()) + 1;
  return Array.from({ length: count }, (_, i) => byId.get(i) ?? `class${i}`);
}

type Token =
  | { kind: "punct"; value: "{" | "}" | "[" | "]" | ":" | "," }
  | { kind: "int"; value: number }
  | { kind: "string"; value: string }
  | { kind: "end" };

/** A linear-time lexer for the tiny subset of Python literals that `repr(dict[int, str])` produces. */
class PythonLiteralLexer {
  #pos = 0;
  constructor(readonly text: string) {}

  error(what: string): ModelMetadataError {
    return new ModelMetadataError(`metadata 'names' is not a Python dict of class names: ${what} at offset ${this.#pos}`);
  }

  next(): Token {
    const s = this.text;
    while (this.#pos < s.length && " \t\r\n".includes(s[this.#pos] ?? "")) this.#pos++;
    if (this.#pos >= s.length) return { kind: "end" };
    const c = s[this.#pos] ?? "";
    if ("{}[]:,".includes(c)) {
      this.#pos++;
      return { kind: "punct", value: c as "{" | "}" | "[" | "]" | ":" | "," };
    }
    if (c >= "0" && c <= "9") {
      const start = this.#pos;
      while (this.#pos < s.length && (s[this.#pos] ?? "") >= "0" && (s[this.#pos] ?? "") <= "9") this.#pos++;
      if (this.#pos - start > 6) throw this.error("class id too long");
      return { kind: "int", value: Number(s.slice(start, this.#pos)) };
    }
    if (c === "'" || c === '"') return { kind: "string", value: this.#string(c) };
    throw this.error(`unexpected character ${JSON.stringify(c)}`);
  }

  #string(quote: string): string {
    const s = this.text;
    let out = "";
    this.#pos++;
    while (this.#pos < s.length) {
      const c = s[this.#pos++] ?? "";
      if (c === quote) return out;
      if (c === "\n") break;
      if (c !== "\\") {
        out += c;
        continue;
      }
      const e = s[this.#pos++] ?? "";
      const simple: Record<string, string> = { "\\": "\\", "'": "'", '"': '"', n: "\n", t: "\t", r: "\r", "0": "\0" };
      const hexLen = e === "x" ? 2 : e === "u" ? 4 : e === "U" ? 8 : 0;
      if (simple[e] !== undefined) out += simple[e];
      else if (hexLen > 0) {
        const hex = s.slice(this.#pos, this.#pos + hexLen);
        const code = /^[0-9a-fA-F]+$/.test(hex) && hex.length === hexLen ? parseInt(hex, 16) : NaN;
        if (!(code <= 0x10ffff)) throw this.error("bad escape in class name");
        out += String.fromCodePoint(code);
        this.#pos += hexLen;
      } else throw this.error(`unsupported escape \\${e} in class name`);
    }
    throw this.error("unterminated class name string");
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function clip(s: string): string {
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}
