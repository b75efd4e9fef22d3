#!/usr/bin/env node
// Offline validation of rendered Kubernetes manifests (multi-document YAML streams).
//
//   node validate-k8s.mjs [--flags router/app/settings.cc] [--forbid-dev-only NAME,...]
//                         [--require-adapter] NAME=FILE...
//
// Each NAME=FILE is one stream (e.g. the output of `kubectl kustomize overlays/dev`). Per object:
//   1. schema: built-in kinds through the kubernetes-models class for their apiVersion/kind
//      (`.validate()`: types, required fields, enums, formats); CRDs (cert-manager Certificate,
//      ServiceMonitor) through the hand-written schemas of lib/crds.mjs; anything else is an error;
//   2. unknown fields: built-in kinds against the property lists of kubernetes-models' generated
//      type declarations (lib/fields.mjs), CRDs against lib/crds.mjs, CRD metadata as ObjectMeta;
//   3. policy, per stream (lib/policy.mjs): references, selectors, pod security, resources, probes,
//      the router's VROUTER_* variables against its real flags, shutdown timing, HPA rules.
// Across streams: every Pods metric an HPA uses is served by a prometheus-adapter rule (when a
// stream holds an adapter configuration, or always with --require-adapter); every PodMonitor or
// ServiceMonitor (e.g. deploy/prometheus/) selects pods/Services of the rendered streams and
// names ports they have.
// Exit status 1 on any error; every error is printed as  stream: Kind/name: path: message.
import fs from "node:fs";
import YAML from "yaml";
import { rootType, namedType, unknownFields, unresolved } from "./lib/fields.mjs";
import { crdSchemas, checkSchema } from "./lib/crds.mjs";
import { checkStream, routerEnvNames } from "./lib/policy.mjs";

const args = process.argv.slice(2);
const opts = { flags: null, forbidDevOnly: new Set(), requireAdapter: false, streams: [] };
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === "--flags") opts.flags = args[++i];
  else if (a === "--forbid-dev-only") args[++i].split(",").forEach((n) => opts.forbidDevOnly.add(n));
  else if (a === "--require-adapter") opts.requireAdapter = true;
  else if (/^[^=]+=/.test(a)) {
    const eq = a.indexOf("=");
    opts.streams.push({ name: a.slice(0, eq), file: a.slice(eq + 1) });
  } else {
    console.error(`usage: validate-k8s.mjs [--flags settings.cc] [--forbid-dev-only NAME,...] [--require-adapter] NAME=FILE...\nunknown argument: ${a}`);
    process.exit(2);
  }
}
if (opts.streams.length === 0) {
  console.error("validate-k8s.mjs: no NAME=FILE given");
  process.exit(2);
}

const envNames = opts.flags ? routerEnvNames(opts.flags) : null;
const objectMeta = namedType("@kubernetes-models/apimachinery/apis/meta/v1/ObjectMeta", "IIoK8sApimachineryPkgApisMetaV1ObjectMeta");
const modelCache = new Map();

async function modelClass(apiVersion, kind) {
  const key = `${apiVersion}/${kind}`;
  if (!modelCache.has(key)) {
    let cls = null;
    if (/^[\w.-]+(\/[\w.-]+)?$/.test(apiVersion) && /^\w+$/.test(kind) && rootType(apiVersion, kind)) {
      try {
        cls = (await import(`kubernetes-models/${apiVersion}/${kind}`))[kind] ?? null;
      } catch {
        cls = null;
      }
    }
    modelCache.set(key, cls);
  }
  return modelCache.get(key);
}

const dotted = (instancePath) =>
  instancePath
    .split("/")
    .filter(Boolean)
    .map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"))
    .reduce((acc, s) => (/^\d+$/.test(s) ? `${acc}[${s}]` : acc ? `${acc}.${s}` : s), "");

async function checkObject(o) {
  const out = [];
  if (o === null || typeof o !== "object" || Array.isArray(o)) return [{ path: "", message: "a document that is not an object" }];
  const { apiVersion, kind } = o;
  if (typeof apiVersion !== "string" || typeof kind !== "string") return [{ path: "", message: "missing apiVersion or kind" }];
  const Model = await modelClass(apiVersion, kind);
  if (Model) {
    // kustomize wraps long base64 values over several lines; the API server accepts that (Go's
    // base64 decoder skips \r and \n), kubernetes-models' "byte" format does not: unwrap first.
    const binary = (kind === "Secret" && o.data) || (kind === "ConfigMap" && o.binaryData);
    const data = binary
      ? Object.fromEntries(Object.entries(binary).map(([k, v]) => [k, typeof v === "string" ? v.replace(/[\r\n]/g, "") : v]))
      : null;
    const subject = data ? { ...o, [kind === "Secret" ? "data" : "binaryData"]: data } : o;
    try {
      new Model(subject).validate();
    } catch (e) {
      if (Array.isArray(e.errors)) {
        for (const x of e.errors) {
          const extra = x.params?.allowedValues ? ` (${x.params.allowedValues.join(", ")})` : "";
          out.push({ path: dotted(x.instancePath || ""), message: `${x.message}${extra}` });
        }
      } else out.push({ path: "", message: String(e.message || e) });
    }
    out.push(...unknownFields(o, rootType(apiVersion, kind)));
    return out;
  }
  const spec = crdSchemas[apiVersion]?.[kind];
  if (!spec) return [{ path: "", message: `no schema for ${apiVersion} ${kind} (not in kubernetes-models, not in lib/crds.mjs)` }];
  for (const k of Object.keys(o))
    if (!["apiVersion", "kind", "metadata", "spec", "status"].includes(k)) out.push({ path: k, message: `unknown field "${k}"` });
  if (typeof o.metadata?.name !== "string") out.push({ path: "metadata.name", message: "is required" });
  out.push(...unknownFields(o.metadata ?? {}, objectMeta, "metadata"));
  if (o.spec === undefined) out.push({ path: "", message: "must have required property 'spec'" });
  else checkSchema(o.spec, spec, "spec", out);
  return out;
}

let failures = 0;
const everything = []; // {stream, object}
const hpaMetrics = [];
let adapterMetrics = null;
const report = (stream, object, path, message) => {
  failures++;
  console.log(`  FAIL ${stream}: ${object}: ${path ? `${path}: ` : ""}${message}`);
};

for (const { name, file } of opts.streams) {
  const text = fs.readFileSync(file, "utf8");
  const docs = YAML.parseAllDocuments(text, { uniqueKeys: true, prettyErrors: true });
  const objects = [];
  let bad = false;
  for (const d of docs) {
    for (const e of [...d.errors, ...d.warnings]) {
      report(name, "(yaml)", "", e.message.split("\n")[0]);
      bad = true;
    }
    const o = d.toJS({ maxAliasCount: 100 });
    if (o !== null && o !== undefined) objects.push(o);
  }
  if (bad) continue;
  everything.push(...objects.map((object) => ({ stream: name, object })));
  const before = failures;
  for (const o of objects) {
    const id = `${o?.kind ?? "?"}/${o?.metadata?.name ?? "?"}`;
    for (const e of await checkObject(o)) report(name, id, e.path, e.message);
  }
  if (envNames) {
    const r = checkStream(objects, { envNames, forbidDevOnly: opts.forbidDevOnly.has(name) });
    for (const e of r.errors) report(name, e.object, e.path, e.message);
    hpaMetrics.push(...r.hpaMetrics.map((m) => ({ ...m, stream: name })));
    if (r.adapterMetrics) adapterMetrics = [...(adapterMetrics || []), ...r.adapterMetrics];
  }
  if (failures === before) {
    const kinds = [...new Set(objects.map((o) => o.kind))].sort().join(", ");
    console.log(`  ok   ${name}: ${objects.length} objects (${kinds})`);
  }
}

if (adapterMetrics || opts.requireAdapter) {
  for (const m of hpaMetrics)
    if (!(adapterMetrics || []).includes(m.name))
      report(m.stream, `HorizontalPodAutoscaler/${m.hpa.metadata?.name}`, "spec.metrics", `Pods metric "${m.name}" is served by no prometheus-adapter rule`);
}
const matches = (sel, labels) =>
  !!sel && Object.entries(sel.matchLabels || {}).every(([k, v]) => labels?.[k] === v) && !(sel.matchExpressions || []).length;
for (const { stream, object: m } of everything) {
  if (m.apiVersion !== "monitoring.coreos.com/v1" || !["PodMonitor", "ServiceMonitor"].includes(m.kind)) continue;
  const mid = `${m.kind}/${m.metadata?.name}`;
  if (m.kind === "PodMonitor") {
    const pods = everything.map(({ object: o }) => o.spec?.template).filter((t) => t && matches(m.spec?.selector, t.metadata?.labels));
    if (!pods.length) report(stream, mid, "spec.selector", "selects no pod template of the rendered manifests");
    (m.spec?.podMetricsEndpoints || []).forEach((e, i) => {
      if (pods.length && e.port && !pods.every((t) => (t.spec?.containers || []).some((c) => (c.ports || []).some((p) => p.name === e.port))))
        report(stream, mid, `spec.podMetricsEndpoints[${i}].port`, `"${e.port}" is not a container port name of every selected pod`);
    });
  } else {
    const svcs = everything.map(({ object: o }) => o).filter((o) => o.kind === "Service" && matches(m.spec?.selector, o.metadata?.labels));
    if (!svcs.length) report(stream, mid, "spec.selector", "selects no Service of the rendered manifests");
    (m.spec?.endpoints || []).forEach((e, i) => {
      if (svcs.length && e.port && !svcs.every((v) => (v.spec?.ports || []).some((p) => p.name === e.port)))
        report(stream, mid, `spec.endpoints[${i}].port`, `"${e.port}" is not a port name of every selected Service`);
    });
  }
}
if (unresolved.size) console.log(`  note: type names the field walker could not resolve (treated as opaque): ${[...unresolved].join(", ")}`);
process.exit(failures ? 1 : 0);
