// Unknown-field check for Kubernetes and Istio objects. The validators kubernetes-models ships
// (compiled JSON schemas) accept fields the API does not have, as the OpenAPI schemas they come
// from do, so `readynessProbe:` or `outlierDetecton:` would pass them and be dropped (or refused)
// by the API server only at deploy time. The same packages' TypeScript declarations list every
// field of every type; this module reads them (a small parser for the subset of TypeScript type
// syntax they use) and reports each field of an object that its type does not declare.
//
// Contract: unknownFields(object, modulePath) returns paths like
// "spec.template.spec.containers[0].readynessProbe" for every key that no declared type at that
// place has. Unions are lenient (a key any member declares is accepted); a type the parser cannot
// resolve accepts anything below it, and is listed in `unresolved` so a test can insist on none.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, resolve } from "node:path";

const files = new Map(); // path → { imports: Map(name → spec), types: Map(name → type) }
export const unresolved = new Set();

/** Unknown-field paths of `object` against the declared type `I<Kind>` of the model at `modulePath`. */
export function unknownFields(object, modulePath) {
  const path = fileURLToPath(import.meta.resolve(modulePath)).replace(/\.js$/, ".d.ts");
  const errors = [];
  check(object, { kind: "ref", name: `I${object.kind}`, file: path }, "", errors);
  return errors;
}

function check(value, type, path, errors) {
  type = resolveRef(type);
  if (!type || value === null || typeof value !== "object") return;
  if (type.kind === "array") {
    if (Array.isArray(value)) value.forEach((v, i) => check(v, type.of, `${path}[${i}]`, errors));
    return;
  }
  if (type.kind === "union") {
    const members = type.of.map(resolveRef).filter(Boolean);
    if (Array.isArray(value)) {
      const arrays = members.filter((m) => m.kind === "array");
      if (arrays.length === 1) check(value, arrays[0], path, errors);
      return;
    }
    const objects = members.filter((m) => m.kind === "object");
    if (objects.length === 0) return;
    return check(value, mergeObjects(objects), path, errors);
  }
  if (type.kind !== "object" || Array.isArray(value)) return;
  for (const [key, v] of Object.entries(value)) {
    const field = type.fields.get(key) ?? type.index;
    if (!field) errors.push(`${path ? path + "." : ""}${key}`);
    else check(v, field, `${path ? path + "." : ""}${key}`, errors);
  }
}

function mergeObjects(objects) {
  const fields = new Map();
  for (const o of objects) for (const [k, t] of o.fields) fields.set(k, fields.has(k) ? { kind: "union", of: [fields.get(k), t] } : t);
  return { kind: "object", fields, index: objects.find((o) => o.index)?.index ?? null };
}

/** Follows references (imports, aliases) to a structural type; null when it cannot (anything goes). */
function resolveRef(type, depth = 0) {
  if (!type || type.kind !== "ref") return type;
  if (depth > 20) return null;
  const file = load(type.file);
  if (file.types.has(type.name)) return resolveRef(file.types.get(type.name), depth + 1);
  if (file.imports.has(type.name)) {
    const { spec, original } = file.imports.get(type.name);
    let target;
    try {
      target = spec.startsWith(".") ? resolve(dirname(type.file), spec.replace(/\.js$/, ".d.ts"))
        : fileURLToPath(import.meta.resolve(spec)).replace(/\.js$/, ".d.ts");
    } catch {
      unresolved.add(`${type.name} (${spec})`);
      return null;
    }
    return resolveRef({ kind: "ref", name: original, file: target }, depth + 1);
  }
  if (!["string", "number", "boolean", "any", "unknown", "null", "undefined", "object", "never", "TypeMeta"].includes(type.name)) {
    unresolved.add(`${type.name} (${type.file})`);
  }
  return null;
}

function load(path) {
  if (files.has(path)) return files.get(path);
  const text = readFileSync(path, "utf8").replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");
  const entry = { imports: new Map(), types: new Map() };
  files.set(path, entry);
  for (const m of text.matchAll(/import\s*\{([^}]*)\}\s*from\s*"([^"]+)"/g)) {
    for (const part of m[1].split(",").map((p) => p.trim()).filter(Boolean)) {
      const [original, alias] = part.split(/\s+as\s+/);
      entry.imports.set(alias ?? original, { spec: m[2], original });
    }
  }
  // export type { IEnvVar as IIoK8sApiCoreV1EnvVar, … }: aliases of local names.
  for (const m of text.matchAll(/export type \{([^}]*)\}/g)) {
    for (const [original, alias] of m[1].split(",").map((p) => p.trim().split(/\s+as\s+/))) {
      if (alias) entry.types.set(alias, { kind: "ref", name: original, file: path });
    }
  }
  for (const m of text.matchAll(/export (interface|type) (\w+)(?:\s+extends\s+[\w, ]+)?\s*(=)?\s*/g)) {
    const parser = new Parser(text, m.index + m[0].length, path);
    entry.types.set(m[2], m[1] === "interface" ? parser.object() : parser.type());
  }
  return entry;
}

/** Recursive descent over TypeScript type syntax: unions, Array<T>, T[], object literals, index signatures, names, literals. */
class Parser {
  constructor(text, at, file) {
    this.tokens = [];
    const re = /\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[A-Za-z_$][\w$.]*|-?\d+(?:\.\d+)?|[{}()<>[\];:?,|&=])/y;
    re.lastIndex = at;
    let depth = 0;
    for (let m; (m = re.exec(text)); ) {
      this.tokens.push(m[1]);
      if (m[1] === "{" || m[1] === "(" || m[1] === "<" || m[1] === "[") depth++;
      if (m[1] === "}" || m[1] === ")" || m[1] === ">" || m[1] === "]") depth--;
      if (depth === 0 && (m[1] === ";" || m[1] === "}")) break;
    }
    this.i = 0;
    this.file = file;
  }
  peek() { return this.tokens[this.i]; }
  next() { return this.tokens[this.i++]; }
  expect(t) { const got = this.next(); if (got !== t) throw new Error(`${this.file}: expected ${t}, got ${got}`); }

  type() {
    if (this.peek() === "|") this.next();
    const of = [this.intersection()];
    while (this.peek() === "|") { this.next(); of.push(this.intersection()); }
    return of.length === 1 ? of[0] : { kind: "union", of };
  }
  intersection() {
    const of = [this.postfix()];
    while (this.peek() === "&") { this.next(); of.push(this.postfix()); }
    return of.length === 1 ? of[0] : { kind: "union", of };
  }
  postfix() {
    let t = this.primary();
    while (this.peek() === "[" && this.tokens[this.i + 1] === "]") { this.next(); this.next(); t = { kind: "array", of: t }; }
    return t;
  }
  primary() {
    const t = this.next();
    if (t === "{") { this.i--; return this.object(); }
    if (t === "(") { const inner = this.type(); this.expect(")"); return inner; }
    if (/^["'\d-]/.test(t)) return { kind: "literal" };
    if (this.peek() === "<") {
      // Generic applications: Array<T>; Record<K, V> (any key); Exclude<A, B> and the like keep
      // at most A's keys, so A stands for them.
      this.next();
      const args = [this.type()];
      while (this.peek() === ",") { this.next(); args.push(this.type()); }
      this.expect(">");
      if (t === "Array") return { kind: "array", of: args[0] };
      if (t === "Record") return { kind: "object", fields: new Map(), index: args[1] };
      return args[0];
    }
    return { kind: "ref", name: t, file: this.file };
  }
  object() {
    this.expect("{");
    const fields = new Map();
    let index = null;
    while (this.peek() !== "}") {
      if (this.peek() === "[") {
        this.next(); this.next(); this.expect(":"); this.type(); this.expect("]"); this.expect(":");
        index = this.type();
      } else {
        const key = this.next().replace(/^["']|["']$/g, "");
        if (this.peek() === "?") this.next();
        this.expect(":");
        fields.set(key, this.type());
      }
      if (this.peek() === ";" || this.peek() === ",") this.next();
    }
    this.expect("}");
    return { kind: "object", fields, index };
  }
}
