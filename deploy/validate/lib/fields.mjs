// Unknown-field detection for built-in Kubernetes kinds.
//
// kubernetes-models validates types, required fields and enums with validators compiled from the
// Kubernetes OpenAPI definitions, but those validators accept any extra key (`replica: 3` in a
// StatefulSet spec passes), and the package ships no OpenAPI JSON to read the property lists from.
// It does ship, next to every model, a TypeScript declaration generated from the same OpenAPI
// definition: one `"property"?: Type;` line per OpenAPI property, nested types referenced by
// imported interface names (IIoK8sApiCoreV1Container, ...). This module parses those declarations
// (a small parser for the subset the generator emits: interfaces, `extends TypeMeta`, Array<T>,
// index signatures { [key: string]: T }, inline object literals, unions, literal types, aliases)
// and walks each object against them: any key that the OpenAPI definition does not list is
// reported, with the closest known name as a hint. The allowed keys therefore follow the installed
// kubernetes-models version (its Kubernetes version), with nothing hand-maintained.
//
// Opaque places are not walked: types declared with no properties (RawExtension, FieldsV1, JSON)
// and `any`/`unknown`/`object`.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const files = new Map(); // absolute .d.ts path -> parsed file
const resolved = new Map(); // "file#name" -> type node
export const unresolved = new Set(); // type names the parser could not find (treated as opaque)

const SCALAR = { t: "scalar" };
const ANY = { t: "any" };

function resolveSpecifier(fromFile, spec) {
  let js;
  if (spec.startsWith(".")) js = path.resolve(path.dirname(fromFile), spec);
  else {
    try {
      js = fileURLToPath(import.meta.resolve(spec));
    } catch {
      return null;
    }
  }
  const dts = js.replace(/\.js$/, "") + ".d.ts";
  return fs.existsSync(dts) ? dts : null;
}

function parseFile(file) {
  if (files.has(file)) return files.get(file);
  const text = fs
    .readFileSync(file, "utf8")
    .replace(/\/\*[\s\S]*?\*\//g, " ")
    .replace(/^\s*\/\/.*$/gm, " ");
  const f = { file, imports: new Map(), exported: new Map(), interfaces: new Map(), aliases: new Map() };
  for (const m of text.matchAll(/import\s*(?:type\s*)?\{([^}]*)\}\s*from\s*"([^"]+)"/g)) {
    for (const part of m[1].split(",")) {
      const [orig, as] = part.trim().split(/\s+as\s+/);
      if (orig) f.imports.set((as || orig).trim(), { name: orig.trim(), spec: m[2] });
    }
  }
  for (const m of text.matchAll(/export\s+type\s*\{([^}]*)\}/g)) {
    for (const part of m[1].split(",")) {
      const [local, as] = part.trim().split(/\s+as\s+/);
      if (local && as) f.exported.set(as.trim(), local.trim());
    }
  }
  for (const m of text.matchAll(/export\s+(?:declare\s+)?interface\s+(\w+)(?:\s+extends\s+([^{]+?))?\s*\{/g)) {
    const open = m.index + m[0].length - 1;
    let depth = 0;
    let end = open;
    for (; end < text.length; end++) {
      if (text[end] === "{") depth++;
      else if (text[end] === "}" && --depth === 0) break;
    }
    const ext = (m[2] || "").split(",").map((s) => s.trim()).filter(Boolean);
    f.interfaces.set(m[1], { body: text.slice(open + 1, end), extends: ext });
  }
  for (const m of text.matchAll(/export\s+type\s+(\w+)\s*=\s*([^;]+);/g)) f.aliases.set(m[1], m[2]);
  files.set(file, f);
  return f;
}

// --- a parser for the type expressions of generated declarations -----------------------------
function tokenize(src) {
  const re = /\s*(?:("(?:[^"\\]|\\.)*")|('(?:[^'\\]|\\.)*')|([A-Za-z_$][\w$]*)|(-?\d+(?:\.\d+)?)|(\S))/y;
  const out = [];
  let m;
  while (re.lastIndex < src.length && (m = re.exec(src))) {
    if (m[1] !== undefined || m[2] !== undefined) out.push({ k: "str", v: JSON.parse(m[1] ?? `"${m[2].slice(1, -1)}"`) });
    else if (m[3] !== undefined) out.push({ k: "id", v: m[3] });
    else if (m[4] !== undefined) out.push({ k: "num", v: m[4] });
    else if (m[5] !== undefined) out.push({ k: "p", v: m[5] });
  }
  return out;
}

class Parser {
  constructor(src, file) {
    this.toks = tokenize(src);
    this.i = 0;
    this.file = file;
  }
  peek(v) {
    const t = this.toks[this.i];
    return t && (v === undefined || t.v === v) ? t : null;
  }
  next() {
    return this.toks[this.i++];
  }
  expect(v) {
    const t = this.next();
    if (!t || t.v !== v) throw new Error(`${this.file}: expected '${v}', got '${t ? t.v : "end"}'`);
  }
  members(close) {
    const props = new Map();
    let index = null;
    while (this.peek() && !(close && this.peek(close))) {
      if (this.peek("readonly")) this.next();
      if (this.peek("[")) {
        this.next();
        this.next(); // key
        this.expect(":");
        this.type();
        this.expect("]");
        this.expect(":");
        index = this.type();
      } else {
        const name = this.next().v;
        if (this.peek("?")) this.next();
        this.expect(":");
        props.set(name, this.type());
      }
      if (this.peek(";") || this.peek(",")) this.next();
    }
    return { t: "obj", props, index };
  }
  type() {
    if (this.peek("|")) this.next();
    const of = [this.member()];
    while (this.peek("|")) {
      this.next();
      of.push(this.member());
    }
    return of.length === 1 ? of[0] : { t: "union", of };
  }
  member() {
    let node = this.primary();
    while (this.peek("[")) {
      this.next();
      if (this.peek("]")) {
        this.next();
        node = { t: "arr", of: node };
      } else {
        this.type(); // indexed access type (IFoo["kind"]): a literal
        this.expect("]");
        node = SCALAR;
      }
    }
    return node;
  }
  primary() {
    const t = this.next();
    if (!t) throw new Error(`${this.file}: unexpected end of type`);
    if (t.k === "str" || t.k === "num") return SCALAR;
    if (t.v === "{") {
      const node = this.members("}");
      this.expect("}");
      return node;
    }
    if (t.v === "(") {
      const node = this.type();
      this.expect(")");
      return node;
    }
    if (t.k !== "id") throw new Error(`${this.file}: unexpected '${t.v}' in a type`);
    if (t.v === "Array" || t.v === "ReadonlyArray") {
      this.expect("<");
      const of = this.type();
      this.expect(">");
      return { t: "arr", of };
    }
    if (t.v === "Record") {
      this.expect("<");
      this.type();
      this.expect(",");
      const v = this.type();
      this.expect(">");
      return { t: "obj", props: new Map(), index: v };
    }
    if (["string", "number", "boolean", "null", "undefined", "true", "false", "bigint", "never"].includes(t.v)) return SCALAR;
    if (["any", "unknown", "object"].includes(t.v)) return ANY;
    if (this.peek("<")) {
      // generic reference we do not model: skip its arguments
      let depth = 0;
      do {
        const x = this.next();
        if (x.v === "<") depth++;
        else if (x.v === ">") depth--;
      } while (depth > 0);
      return ANY;
    }
    return { t: "ref", name: t.v, file: this.file };
  }
}

function resolveRef(name, file) {
  const key = `${file}#${name}`;
  if (resolved.has(key)) return resolved.get(key);
  resolved.set(key, ANY); // cycles (JSONSchemaProps) resolve to opaque while in progress
  let node = ANY;
  const f = parseFile(file);
  const local = f.exported.get(name) || name;
  if (name === "TypeMeta") {
    node = { t: "obj", props: new Map([["apiVersion", SCALAR], ["kind", SCALAR]]), index: null };
  } else if (f.interfaces.has(local)) {
    const iface = f.interfaces.get(local);
    const parsed = new Parser(iface.body, file).members(undefined);
    for (const base of iface.extends) {
      const b = deref(resolveRef(base, file));
      if (b.t === "obj") for (const [k, v] of b.props) if (!parsed.props.has(k)) parsed.props.set(k, v);
    }
    node = parsed;
  } else if (f.aliases.has(local)) {
    node = new Parser(f.aliases.get(local), file).type();
  } else if (f.imports.has(name)) {
    const imp = f.imports.get(name);
    const target = resolveSpecifier(file, imp.spec);
    if (target) node = resolveRef(imp.name, target);
    else if (name !== "TypeMeta") unresolved.add(name);
  } else {
    unresolved.add(name);
  }
  resolved.set(key, node);
  return node;
}

function deref(node) {
  let n = node;
  for (let guard = 0; n && n.t === "ref" && guard < 50; guard++) n = resolveRef(n.name, n.file);
  return n || ANY;
}

/** The declaration file of a built-in kind, or null when kubernetes-models has no such model. */
export function declarationFor(apiVersion, kind) {
  try {
    const js = fileURLToPath(import.meta.resolve(`kubernetes-models/${apiVersion}/${kind}`));
    const dts = js.replace(/\.js$/, "") + ".d.ts";
    return fs.existsSync(dts) ? dts : null;
  } catch {
    return null;
  }
}

/** The root type of a built-in kind (its `I<Kind>` interface). */
export function rootType(apiVersion, kind) {
  const dts = declarationFor(apiVersion, kind);
  return dts ? { t: "ref", name: `I${kind}`, file: dts } : null;
}

/** A named type from a module of kubernetes-models or @kubernetes-models/* (e.g. ObjectMeta). */
export function namedType(spec, name) {
  const dts = resolveSpecifier(fileURLToPath(import.meta.url), spec);
  return dts ? { t: "ref", name, file: dts } : null;
}

function editDistance(a, b) {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++)
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
  return d[a.length][b.length];
}

export function suggest(key, known) {
  let best = null;
  let bestD = Infinity;
  for (const k of known) {
    const dist = editDistance(key.toLowerCase(), k.toLowerCase());
    if (dist < bestD) [best, bestD] = [k, dist];
  }
  return best !== null && bestD <= Math.max(2, Math.floor(key.length / 3)) ? best : null;
}

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

/**
 * Reports every key of `value` that the type does not declare, as {path, message}.
 * `path` is dotted with [i] for list items, e.g. spec.template.spec.containers[0].resources.limit.
 */
export function unknownFields(value, type, at = "", out = []) {
  const node = deref(type);
  if (node.t === "union") {
    const want = Array.isArray(value) ? "arr" : isObject(value) ? "obj" : null;
    const pick = node.of.map(deref).find((m) => m.t === want);
    if (pick) unknownFields(value, pick, at, out);
    return out;
  }
  if (node.t === "arr" && Array.isArray(value)) {
    value.forEach((item, i) => unknownFields(item, node.of, `${at}[${i}]`, out));
  } else if (node.t === "obj" && isObject(value)) {
    if (node.props.size === 0 && !node.index) return out; // opaque (RawExtension, FieldsV1, ...)
    for (const [k, v] of Object.entries(value)) {
      const p = at ? `${at}.${k}` : k;
      if (node.props.has(k)) unknownFields(v, node.props.get(k), p, out);
      else if (node.index) unknownFields(v, node.index, p, out);
      else {
        const hint = suggest(k, node.props.keys());
        out.push({ path: p, message: `unknown field "${k}"${hint ? ` (did you mean "${hint}"?)` : ""}` });
      }
    }
  }
  return out;
}
