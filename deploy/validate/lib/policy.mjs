// Checks of our own, on one rendered stream (all objects of one overlay): what a schema cannot
// see. References between objects resolve, selectors select something, the pod security and
// resource rules of deploy/k8s hold, and the router's configuration is coherent with the
// router's real flags (the settings table, router/app/settings.cc) and with its shutdown timing.
import fs from "node:fs";
import YAML from "yaml";
import { suggest } from "./fields.mjs";

const WORKLOAD_KINDS = new Set(["StatefulSet", "Deployment", "DaemonSet", "ReplicaSet", "Job"]);
const DEV_ONLY = "vrouter/dev-only";
const EXTERNAL_SECRETS = "vrouter/external-secrets";
const ROUTER_SECRETS = ["VROUTER_AUTH_SECRET", "VROUTER_VIDEO_SERVER_SECRET"];
const DEFAULT_DRAIN_MS = 10000; // router/app/config.h: drain_window
const RESERVED_FDS = 256; // router/app/host_facts.cc: kReservedFds

/** Flag names of `vrouter serve` as VROUTER_* variables, read from the rows of settings.cc's
 * table (`t.Integer("max-batch", ...)`). `vrouter --help-settings-json` prints the same table. */
export function routerEnvNames(settingsCc) {
  const text = fs.readFileSync(settingsCc, "utf8");
  const names = new Set();
  for (const m of text.matchAll(/^\s*t\.[A-Z]\w*\(\s*"([a-z][a-z0-9-]*)"\s*,/gm)) {
    names.add(`VROUTER_${m[1].toUpperCase().replace(/-/g, "_")}`);
  }
  if (names.size < 10) throw new Error(`${settingsCc}: found only ${names.size} settings; has the table moved?`);
  return names;
}

const id = (o) => `${o.kind}/${o.metadata?.name ?? "?"}`;
const labelsMatch = (selector, labels) =>
  !!selector &&
  Object.entries(selector.matchLabels || {}).every(([k, v]) => labels?.[k] === v) &&
  (selector.matchExpressions || []).every((e) => {
    const has = labels && e.key in labels;
    if (e.operator === "In") return has && e.values.includes(labels[e.key]);
    if (e.operator === "NotIn") return !has || !e.values.includes(labels[e.key]);
    if (e.operator === "Exists") return has;
    if (e.operator === "DoesNotExist") return !has;
    return false;
  });

function podTemplate(o) {
  if (WORKLOAD_KINDS.has(o.kind)) return o.spec?.template;
  if (o.kind === "CronJob") return o.spec?.jobTemplate?.spec?.template;
  if (o.kind === "Pod") return o;
  return null;
}

function hostPortOf(listen) {
  const m = /:(\d+)$/.exec(listen || "");
  return m ? Number(m[1]) : null;
}

function preStopSeconds(c) {
  const pre = c.lifecycle?.preStop;
  if (!pre) return 0;
  if (pre.sleep) return Number(pre.sleep.seconds) || 0;
  const cmd = pre.exec?.command || [];
  const i = cmd.findIndex((a) => /(^|\/)sleep$/.test(a));
  return i >= 0 ? Number(cmd[i + 1]) || 0 : 0;
}

function prometheusAdapterMetrics(cm, err) {
  const text = cm.data?.["config.yaml"];
  if (typeof text !== "string") return null;
  let config;
  try {
    config = YAML.parse(text);
  } catch (e) {
    err(cm, 'data."config.yaml"', `not YAML: ${e.message}`);
    return [];
  }
  if (!Array.isArray(config?.rules)) return null;
  const served = [];
  config.rules.forEach((r, i) => {
    const at = `data."config.yaml".rules[${i}]`;
    for (const k of ["seriesQuery", "metricsQuery"])
      if (typeof r?.[k] !== "string") err(cm, at, `prometheus-adapter rule needs ${k}`);
    if (!r?.resources?.overrides && !r?.resources?.template) err(cm, at, "prometheus-adapter rule needs resources (overrides or template)");
    if (typeof r?.metricsQuery === "string" && !r.metricsQuery.includes("<<.LabelMatchers>>"))
      err(cm, at, "metricsQuery must use <<.LabelMatchers>> (or every pod gets the same value)");
    const series = /^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(r?.seriesQuery || "")?.[1];
    served.push(r?.name?.as || series);
  });
  return served;
}

/**
 * objects: the parsed objects of one stream. Returns {errors: [{object, path, message}],
 * hpaMetrics: [...], adapterMetrics: [...] | null}.
 */
export function checkStream(objects, { envNames, forbidDevOnly }) {
  const errors = [];
  const err = (o, path, message) => errors.push({ object: id(o), path, message });
  const byKind = (k) => objects.filter((o) => o.kind === k);
  const named = (k, n) => objects.find((o) => o.kind === k && o.metadata?.name === n);
  const workloads = objects.filter((o) => podTemplate(o));
  const hpaTargets = new Set(byKind("HorizontalPodAutoscaler").map((h) => `${h.spec?.scaleTargetRef?.kind}/${h.spec?.scaleTargetRef?.name}`));
  const certSecrets = new Set(byKind("Certificate").map((c) => c.spec?.secretName));
  const hpaMetrics = [];
  let adapterMetrics = null;

  for (const o of objects) {
    if (forbidDevOnly && (o.metadata?.labels?.[DEV_ONLY] === "true"))
      err(o, "metadata.labels", `${DEV_ONLY} object in a stream that must not contain any`);
  }

  // --- workloads and their pods -------------------------------------------------------------
  for (const w of workloads) {
    const tpl = podTemplate(w);
    const pod = tpl.spec || {};
    const base = w.kind === "Pod" ? "spec" : w.kind === "CronJob" ? "spec.jobTemplate.spec.template.spec" : "spec.template.spec";
    const external = new Set((w.metadata?.annotations?.[EXTERNAL_SECRETS] || "").split(",").map((s) => s.trim()).filter(Boolean));

    if (w.spec?.selector && w.kind !== "Pod" && !labelsMatch(w.spec.selector, tpl.metadata?.labels))
      err(w, "spec.selector", "does not match the pod template's labels");
    if (hpaTargets.has(id(w)) && w.spec?.replicas !== undefined)
      err(w, "spec.replicas", "set on an HPA target: every apply would reset the autoscaled count (leave it out)");
    if (w.kind === "StatefulSet") {
      const svc = named("Service", w.spec?.serviceName);
      if (!svc) err(w, "spec.serviceName", `no Service "${w.spec?.serviceName}" in this stream`);
      else if (svc.spec?.clusterIP !== "None") err(w, "spec.serviceName", `Service "${svc.metadata.name}" is not headless (per-pod DNS needs clusterIP: None)`);
    }
    if (pod.serviceAccountName && pod.serviceAccountName !== "default" && !named("ServiceAccount", pod.serviceAccountName))
      err(w, `${base}.serviceAccountName`, `no ServiceAccount "${pod.serviceAccountName}" in this stream`);

    // Pod security (the "restricted" Pod Security Standard, hostPort aside: production exposes
    // the router through it on purpose, see deploy/k8s/README.md).
    for (const f of ["hostNetwork", "hostPID", "hostIPC"]) if (pod[f]) err(w, `${base}.${f}`, "must not be true");
    const podSc = pod.securityContext || {};
    const all = [...(pod.initContainers || []).map((c, i) => [c, `${base}.initContainers[${i}]`]), ...(pod.containers || []).map((c, i) => [c, `${base}.containers[${i}]`])];
    for (const [c, at] of all) {
      const sc = c.securityContext || {};
      if (!(sc.runAsNonRoot ?? podSc.runAsNonRoot)) err(w, `${at}.securityContext.runAsNonRoot`, "must be true (here or in the pod's securityContext)");
      if ((sc.runAsUser ?? podSc.runAsUser) === 0) err(w, `${at}.securityContext.runAsUser`, "must not be 0");
      if (sc.allowPrivilegeEscalation !== false) err(w, `${at}.securityContext.allowPrivilegeEscalation`, "must be false");
      if (sc.privileged) err(w, `${at}.securityContext.privileged`, "must not be true");
      if (sc.readOnlyRootFilesystem !== true) err(w, `${at}.securityContext.readOnlyRootFilesystem`, "must be true");
      if (!(sc.capabilities?.drop || []).includes("ALL")) err(w, `${at}.securityContext.capabilities.drop`, 'must contain "ALL"');
      if ((sc.capabilities?.add || []).length) err(w, `${at}.securityContext.capabilities.add`, "must be empty");
      const seccomp = (sc.seccompProfile || podSc.seccompProfile)?.type;
      if (seccomp !== "RuntimeDefault" && seccomp !== "Localhost") err(w, `${at}.securityContext.seccompProfile`, "must be RuntimeDefault (here or in the pod)");
      const image = c.image || "";
      const last = image.split("/").pop();
      if (!image.includes("@sha256:") && (!last.includes(":") || last.endsWith(":latest")))
        err(w, `${at}.image`, `"${image}": pin a tag or a digest (not latest)`);
      const req = c.resources?.requests || {};
      const lim = c.resources?.limits || {};
      if (req.cpu === undefined || req.memory === undefined) err(w, `${at}.resources.requests`, "needs cpu and memory");
      if (lim.memory === undefined) err(w, `${at}.resources.limits.memory`, "is required");
    }

    const portNames = new Map();
    for (const c of pod.containers || []) for (const p of c.ports || []) if (p.name) portNames.set(p.name, p.containerPort);
    (pod.containers || []).forEach((c, i) => {
      const at = `${base}.containers[${i}]`;
      const ports = new Set((c.ports || []).map((p) => p.containerPort));
      for (const probe of ["readinessProbe", "livenessProbe"]) {
        const p = c[probe];
        if (!p) {
          err(w, `${at}.${probe}`, "is required");
          continue;
        }
        const port = p.httpGet?.port ?? p.tcpSocket?.port ?? p.grpc?.port;
        if (typeof port === "string" && !(c.ports || []).some((x) => x.name === port))
          err(w, `${at}.${probe}`, `port "${port}" is not a port name of this container`);
        if (typeof port === "number" && !ports.has(port)) err(w, `${at}.${probe}`, `port ${port} is not a containerPort of this container`);
      }
    });

    // References to ConfigMaps and Secrets.
    const volumes = new Map((pod.volumes || []).map((v) => [v.name, v]));
    const haveSecret = (n) => named("Secret", n) || certSecrets.has(n) || external.has(n);
    const checkRef = (kind, name, key, optional, at) => {
      if (optional) return;
      if (kind === "Secret" && !haveSecret(name))
        err(w, at, `Secret "${name}" is neither in this stream, nor made by a Certificate, nor listed in the ${EXTERNAL_SECRETS} annotation`);
      if (kind === "ConfigMap" && !named("ConfigMap", name)) err(w, at, `ConfigMap "${name}" is not in this stream`);
      const target = named(kind, name);
      if (target && key !== undefined && !(key in (target.data || {})) && !(key in (target.stringData || {})))
        err(w, at, `${kind} "${name}" has no key "${key}"`);
    };
    for (const [name, v] of volumes) {
      if (v.secret) checkRef("Secret", v.secret.secretName, undefined, v.secret.optional, `${base}.volumes[${name}].secret`);
      if (v.configMap) checkRef("ConfigMap", v.configMap.name, undefined, v.configMap.optional, `${base}.volumes[${name}].configMap`);
    }
    for (const [c, at] of all) {
      (c.envFrom || []).forEach((e, j) => {
        if (e.configMapRef) checkRef("ConfigMap", e.configMapRef.name, undefined, e.configMapRef.optional, `${at}.envFrom[${j}]`);
        if (e.secretRef) checkRef("Secret", e.secretRef.name, undefined, e.secretRef.optional, `${at}.envFrom[${j}]`);
      });
      (c.env || []).forEach((e, j) => {
        const s = e.valueFrom?.secretKeyRef;
        const m = e.valueFrom?.configMapKeyRef;
        if (s) checkRef("Secret", s.name, s.key, s.optional, `${at}.env[${j}] (${e.name})`);
        if (m) checkRef("ConfigMap", m.name, m.key, m.optional, `${at}.env[${j}] (${e.name})`);
      });
      for (const m of c.volumeMounts || []) if (!volumes.has(m.name)) err(w, `${at}.volumeMounts`, `no volume "${m.name}"`);
    }

    // The router: a container configured through VROUTER_* variables.
    (pod.containers || []).forEach((c, i) => {
      const at = `${base}.containers[${i}]`;
      const env = new Map(); // name -> {value?, source}
      for (const e of c.envFrom || []) {
        const cm = e.configMapRef && named("ConfigMap", e.configMapRef.name);
        if (cm) for (const [k, v] of Object.entries(cm.data || {})) env.set(`${e.prefix || ""}${k}`, { value: v, source: `ConfigMap ${cm.metadata.name}` });
        const sec = e.secretRef && named("Secret", e.secretRef.name);
        if (sec) for (const k of Object.keys({ ...sec.data, ...sec.stringData })) env.set(`${e.prefix || ""}${k}`, { source: `Secret ${sec.metadata.name}` });
      }
      for (const e of c.env || []) {
        const prev = env.get(e.name);
        env.set(e.name, {
          value: e.value ?? (e.valueFrom?.secretKeyRef?.optional ? prev?.value : undefined),
          source: e.valueFrom?.secretKeyRef ? "secretKeyRef" : e.valueFrom ? "valueFrom" : "value",
          entry: e,
        });
      }
      const names = [...env.keys()].filter((n) => n.startsWith("VROUTER_"));
      if (names.length === 0) return;

      for (const n of names)
        if (!envNames.has(n)) {
          const close = suggest(n, envNames);
          err(w, `${at}.env`, `${n} (${env.get(n).source}) is not a vrouter flag: the router would ignore it${close ? ` (did you mean ${close}?)` : ""}`);
        }
      for (const n of ROUTER_SECRETS) {
        const e = env.get(n);
        if (!e) err(w, `${at}.env`, `${n} is not set`);
        else if (e.source !== "secretKeyRef" && !e.source.startsWith("Secret")) err(w, `${at}.env`, `${n} must come from a Secret, not from ${e.source}`);
      }
      const store = env.get("VROUTER_STORE");
      const replicated = hpaTargets.has(id(w)) || (w.spec?.replicas ?? 1) > 1;
      if (replicated && (!store || store.value === "memory"))
        err(w, `${at}.env`, "several replicas need a shared VROUTER_STORE (redis://...); the default `memory` makes each replica its own phone book");
      if (store && /^redis:\/\/[^/]*@/.test(store.value || "") && store.source.startsWith("ConfigMap"))
        err(w, `${at}.env`, "VROUTER_STORE holds a password in a ConfigMap: put the URL in the Secret (key store-url)");
      if (store && store.value !== "memory") {
        // Replicas on Redis sign their fleet messages with a shared key; the router refuses to start without it.
        const key = env.get("VROUTER_REPLICA_KEY");
        if (!key) err(w, `${at}.env`, "VROUTER_REPLICA_KEY is not set: a router with a redis store refuses to start without it");
        else if (key.source !== "secretKeyRef" && !key.source.startsWith("Secret")) err(w, `${at}.env`, `VROUTER_REPLICA_KEY must come from a Secret, not from ${key.source}`);
      }
      if (!env.has("VROUTER_THREADS")) err(w, `${at}.env`, "VROUTER_THREADS unset: the router would start one thread per core of the node");
      if (pod.enableServiceLinks !== false)
        err(w, `${base}.enableServiceLinks`, "must be false: service links inject VROUTER_SERVICE_HOST/VROUTER_PORT_* into the router's flag prefix");
      if (!env.has("VROUTER_REPLICA_ID")) err(w, `${at}.env`, "VROUTER_REPLICA_ID unset (use the pod name, downward API)");

      const ports = new Set((c.ports || []).map((p) => p.containerPort));
      for (const n of ["VROUTER_TLS_LISTEN", "VROUTER_LISTEN", "VROUTER_ADMIN_LISTEN"]) {
        const port = hostPortOf(env.get(n)?.value);
        if (port !== null && !ports.has(port)) err(w, `${at}.ports`, `${n} listens on ${port}, which is not a containerPort`);
      }
      const admin = hostPortOf(env.get("VROUTER_ADMIN_LISTEN")?.value);
      for (const [probe, route] of [["readinessProbe", "/readyz"], ["livenessProbe", "/healthz"]]) {
        const g = c[probe]?.httpGet;
        if (!g) {
          err(w, `${at}.${probe}`, `must be httpGet ${route} on the admin port`);
          continue;
        }
        const port = typeof g.port === "string" ? portNames.get(g.port) : g.port;
        if (g.path !== route || (admin !== null && port !== admin)) err(w, `${at}.${probe}`, `must be httpGet ${route} on the admin port ${admin}`);
      }
      for (const n of ["VROUTER_TLS_CERT", "VROUTER_TLS_KEY"]) {
        const file = env.get(n)?.value;
        if (!file) continue;
        const mount = (c.volumeMounts || []).find((m) => file.startsWith(`${m.mountPath.replace(/\/$/, "")}/`));
        if (!mount) err(w, `${at}.volumeMounts`, `${n}=${file} is not under any volumeMount`);
        else if (!volumes.get(mount.name)?.secret) err(w, `${at}.volumeMounts`, `${n} is mounted from "${mount.name}", not from a Secret`);
      }
      if (env.has("VROUTER_TLS_LISTEN") && (!env.has("VROUTER_TLS_CERT") || !env.has("VROUTER_TLS_KEY")))
        err(w, `${at}.env`, "VROUTER_TLS_LISTEN needs VROUTER_TLS_CERT and VROUTER_TLS_KEY (the router refuses to start)");

      const drainMs = Number(env.get("VROUTER_DRAIN_WINDOW_MS")?.value ?? DEFAULT_DRAIN_MS);
      const grace = pod.terminationGracePeriodSeconds ?? 30;
      const pre = preStopSeconds(c);
      if (!(grace > pre + drainMs / 1000))
        err(w, `${base}.terminationGracePeriodSeconds`, `${grace} s must exceed preStop ${pre} s + drain window ${drainMs / 1000} s, or the kubelet kills the router mid-drain`);
      if (pre <= 0) err(w, `${at}.lifecycle.preStop`, "needs a short sleep, so endpoints and DNS drop the pod before the router stops accepting");

      const maxConn = Number(env.get("VROUTER_MAX_CONNECTIONS")?.value ?? 0);
      if (!(maxConn > 0)) err(w, `${at}.env`, "VROUTER_MAX_CONNECTIONS unset: the cap would follow the runtime's nofile limit, not the memory limit");
      if (maxConn > 0 && maxConn + RESERVED_FDS > 1048576) err(w, `${at}.env`, "VROUTER_MAX_CONNECTIONS exceeds any runtime's nofile limit");
    });
  }

  // --- Services, PDBs, NetworkPolicies select pods of this stream ---------------------------
  const templates = workloads.map((w) => ({ w, tpl: podTemplate(w) }));
  const selected = (sel) => templates.filter(({ tpl }) => labelsMatch(sel, tpl.metadata?.labels));
  for (const s of byKind("Service")) {
    if (!s.spec?.selector) continue;
    const hits = selected({ matchLabels: s.spec.selector });
    if (hits.length === 0) {
      err(s, "spec.selector", "selects no pod template of this stream");
      continue;
    }
    (s.spec.ports || []).forEach((p, i) => {
      if (typeof p.targetPort !== "string") return;
      const ok = hits.some(({ tpl }) => (tpl.spec?.containers || []).some((c) => (c.ports || []).some((x) => x.name === p.targetPort)));
      if (!ok) err(s, `spec.ports[${i}].targetPort`, `no selected container has a port named "${p.targetPort}"`);
    });
  }
  for (const p of byKind("PodDisruptionBudget"))
    if (selected(p.spec?.selector).length === 0) err(p, "spec.selector", "selects no pod template of this stream");
  for (const n of byKind("NetworkPolicy")) {
    const sel = n.spec?.podSelector;
    const all = sel && !sel.matchLabels && !sel.matchExpressions;
    if (!all && selected(sel).length === 0) err(n, "spec.podSelector", "selects no pod template of this stream");
  }

  // --- autoscaling ------------------------------------------------------------------------------
  for (const h of byKind("HorizontalPodAutoscaler")) {
    const ref = h.spec?.scaleTargetRef || {};
    if (!named(ref.kind, ref.name)) err(h, "spec.scaleTargetRef", `${ref.kind}/${ref.name} is not in this stream`);
    if ((h.spec?.behavior?.scaleDown?.stabilizationWindowSeconds ?? 300) < 300)
      err(h, "spec.behavior.scaleDown.stabilizationWindowSeconds", "under 300 s: every scale-down drains a replica's sockets into the others");
    for (const m of h.spec?.metrics || []) if (m.type === "Pods") hpaMetrics.push({ hpa: h, name: m.pods?.metric?.name });
  }
  for (const cm of byKind("ConfigMap")) {
    const served = prometheusAdapterMetrics(cm, err);
    if (served) adapterMetrics = [...(adapterMetrics || []), ...served];
  }
  return { errors, hpaMetrics, adapterMetrics };
}
