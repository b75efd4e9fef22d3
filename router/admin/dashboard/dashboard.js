// The vrouter operator dashboard: polls the admin API of the replica that serves it once a second
// and redraws. No framework and no CDN (the admin port serves this file from the binary); every
// value from the router is inserted as text, never as HTML (server ids come from video servers).

const POLL_MS = 1000;
const HISTORY_POINTS = 300; // 5 minutes at one poll a second
const MAX_EVENTS = 200;
const TOKEN_KEY = "vrouter-admin-token";

const $ = (id) => document.getElementById(id);

const state = {
  token: sessionStorage.getItem(TOKEN_KEY) || "",
  access: "none",
  previousTotals: null, // {at, requests, errors}
  series: { connections: [], requests: [] },
  serverStates: new Map(), // id -> state, to log changes between polls
  expanded: new Set(),
  seeded: false,
};

// ---------------------------------------------------------------- admin API

async function api(path, options = {}) {
  const headers = { Accept: "application/json" };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  const res = await fetch(path, { ...options, headers, cache: "no-store" });
  let body = null;
  try {
    body = await res.json();
  } catch {
    body = null; // /readyz and errors are JSON; anything else is a transport problem
  }
  return { status: res.status, body };
}

// ---------------------------------------------------------------- helpers

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : String(c ?? ""));
  return node;
}

const fmt = (n, digits = 0) =>
  n === null || n === undefined || Number.isNaN(n)
    ? "–"
    : Number(n).toLocaleString(undefined, { maximumFractionDigits: digits });

function duration(ms) {
  if (ms === null || ms === undefined) return "–";
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

const sum = (obj) => Object.values(obj || {}).reduce((a, b) => a + b, 0);

function setStatus(text, kind) {
  const s = $("status");
  s.textContent = text;
  s.className = `pill ${kind}`;
}

function logEvent(text, bad = false, at = new Date()) {
  const list = $("events");
  const item = el("li", { class: bad ? "bad" : "" }, `${at.toLocaleTimeString()}  ${text}`);
  list.prepend(item);
  while (list.children.length > MAX_EVENTS) list.lastChild.remove();
}

// ---------------------------------------------------------------- charts

function pushPoint(series, value) {
  series.push(value);
  if (series.length > HISTORY_POINTS) series.shift();
}

function drawChart(canvas, values, color) {
  const ctx = canvas.getContext("2d");
  const { width, height } = canvas;
  ctx.clearRect(0, 0, width, height);
  const max = Math.max(1, ...values);
  ctx.fillStyle = "#6b6b70";
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillText(fmt(max, 1), 4, 12);
  ctx.strokeStyle = "#dcdcd8";
  ctx.beginPath();
  ctx.moveTo(0, height - 0.5);
  ctx.lineTo(width, height - 0.5);
  ctx.stroke();
  if (values.length < 2) return;
  ctx.strokeStyle = color;
  ctx.lineWidth = 2;
  ctx.beginPath();
  const step = width / (HISTORY_POINTS - 1);
  const x0 = width - (values.length - 1) * step;
  values.forEach((v, i) => {
    const x = x0 + i * step;
    const y = height - 2 - (v / max) * (height - 18);
    if (i === 0) ctx.moveTo(x, y);
    else ctx.lineTo(x, y);
  });
  ctx.stroke();
}

// ---------------------------------------------------------------- replica

function renderReadiness(ready) {
  if (!ready.body) return setStatus(`admin API unreachable (${ready.status})`, "bad");
  const r = ready.body;
  $("replica").textContent = r.replica || "";
  if (r.draining) setStatus("draining", "warn");
  else if (ready.status === 200) setStatus("ready", "ok");
  else setStatus("not ready", "bad");
  const problem = $("problem");
  const warnings = (r.warnings || []).filter((w) => !w.startsWith("fleet panic"));
  problem.hidden = warnings.length === 0;
  problem.textContent = warnings.join(" · ");
}

function renderReplica(rep, now) {
  const c = rep.connections;
  $("conn-open").textContent = fmt(c.open);
  $("conn-detail").textContent =
    `ws ${fmt(c.ws)} · wss ${fmt(c.wss)} · cap ${fmt(c.max)} · video servers ${fmt(c.video_servers)}`;
  $("assignments").textContent = fmt(rep.assignments);
  $("watches").textContent = `${fmt(rep.watches)} watches · up ${duration(rep.uptime_ms)}`;

  const requests = sum(rep.totals.received);
  const errors = sum(rep.totals.errors);
  const prev = state.previousTotals;
  let reqRate = null;
  let errRate = null;
  if (prev && now > prev.at) {
    const dt = (now - prev.at) / 1000;
    reqRate = Math.max(0, (requests - prev.requests) / dt);
    errRate = Math.max(0, (errors - prev.errors) / dt);
    const byType = Object.entries(rep.totals.received)
      .map(([type, n]) => [type, Math.max(0, (n - (prev.byType[type] || 0)) / dt)])
      .filter(([, r]) => r > 0)
      .sort((a, b) => b[1] - a[1])
      .map(([type, r]) => `${type} ${fmt(r, 1)}`);
    $("req-detail").textContent = byType.join(" · ") || "idle";
  }
  state.previousTotals = { at: now, requests, errors, byType: { ...rep.totals.received } };
  $("req-rate").textContent = fmt(reqRate, 1);
  $("err-rate").textContent = fmt(errRate, 1);
  $("err-detail").textContent =
    Object.entries(rep.totals.errors)
      .map(([code, n]) => `${code} ${fmt(n)}`)
      .join(" · ") || "none since start";

  pushPoint(state.series.connections, c.open);
  if (reqRate !== null) pushPoint(state.series.requests, reqRate);
  drawChart($("chart-conn"), state.series.connections, "#1f5fa8");
  drawChart($("chart-req"), state.series.requests, "#1f7a3a");
}

// ---------------------------------------------------------------- fleet

async function serverAction(id, action) {
  const res = await api(`/v1/servers/${encodeURIComponent(id)}/${action}`, { method: "POST" });
  if (res.status === 200) logEvent(`${id}: ${action} requested by this dashboard`);
  else logEvent(`${id}: ${action} refused (${res.status} ${res.body?.message || ""})`, true);
  poll();
}

function actionCell(s) {
  if (state.access !== "write") return el("td", { class: "muted" }, "—");
  const draining = s.state === "draining"; // an operator's drain outranks every other state
  const action = draining ? "undrain" : "drain";
  const button = el(
    "button",
    { type: "button", dataset: { action, server: s.id }, onclick: (e) => {
      e.stopPropagation();
      serverAction(s.id, action);
    } },
    draining ? "Undrain" : "Drain",
  );
  return el("td", {}, button);
}

function loadCell(s) {
  const util = Math.max(0, Math.min(1, s.score?.utilization ?? 0));
  const fill = el("span");
  fill.style.width = `${Math.round(util * 100)}%`; // CSSOM, not a style attribute: CSP allows it
  const bar = el("span", { class: "bar" }, fill);
  return el("td", {}, bar, `${fmt(s.score?.effective_load, 1)} / ${fmt(s.capacity)}`);
}

function serverRow(s) {
  const sig = s.signals || {};
  const rates = sig.rates;
  const ej = s.ejection || {};
  const stateCell = el(
    "td",
    { class: `state state-${s.state}`, dataset: { state: s.state } },
    s.state,
    el("div", { class: "muted" }, `${s.reason} · ${duration(s.in_state_ms)}`),
  );
  const score = s.eligible
    ? `${fmt((s.score?.utilization ?? 0) * 100, 0)} % used`
    : `not eligible: ${s.ineligible_reason}`;
  const ejection = ej.reason
    ? `${ej.reason}${ej.remaining_ms !== null ? ` (${duration(ej.remaining_ms)} left)` : ""} · ×${ej.times}`
    : ej.times > 0 ? `${ej.times} before` : "—";
  const row = el(
    "tr",
    { class: "server", dataset: { server: s.id }, onclick: () => toggleHistory(s.id) },
    el("td", {}, s.id, el("div", { class: "muted" }, s.connected ? "connected" : "not connected")),
    el("td", {}, s.region),
    stateCell,
    el("td", {}, fmt(s.assigned)),
    loadCell(s),
    el("td", { class: `fwd-${sig.forwarding}`, dataset: { forwarding: sig.forwarding } },
       sig.forwarding, sig.consecutive_bad_reports ? ` (${sig.consecutive_bad_reports} bad)` : ""),
    el("td", {}, rates ? `${fmt(rates.packets_in)} / ${fmt(rates.packets_out)}` : "–"),
    el("td", {}, `${fmt(sig.failure_reporters)} (${fmt((sig.failure_share ?? 0) * 100, 1)} %)`),
    el("td", {}, score),
    el("td", { dataset: { ejection: ej.reason || "" } }, ejection),
    actionCell(s),
  );
  const rows = [row];
  if (state.expanded.has(s.id)) {
    const history = (s.history || [])
      .slice()
      .reverse()
      .map((h) => `${duration(h.ago_ms)} ago: ${h.from} → ${h.to} (${h.reason})`);
    rows.push(el("tr", { class: "history" }, el("td", { colspan: "11" }, history.join(" · ") || "no history")));
  }
  return rows;
}

function toggleHistory(id) {
  if (state.expanded.has(id)) state.expanded.delete(id);
  else state.expanded.add(id);
  poll();
}

function noteStateChanges(servers, now) {
  if (!state.seeded) {
    // First load: what happened before the page opened, from each server's history.
    const past = servers.flatMap((s) =>
      (s.history || []).map((h) => ({ s, h, at: new Date(now - h.ago_ms) })));
    past.sort((a, b) => a.at - b.at);
    for (const { s, h, at } of past) {
      logEvent(`${s.id}: ${h.from} → ${h.to} (${h.reason})`, h.to === "ejected", at);
    }
    state.seeded = true;
  } else {
    for (const s of servers) {
      const before = state.serverStates.get(s.id);
      if (before === undefined) logEvent(`${s.id}: appeared (${s.state})`);
      else if (before !== s.state) {
        logEvent(`${s.id}: ${before} → ${s.state} (${s.reason})`, s.state === "ejected");
      }
    }
  }
  state.serverStates = new Map(servers.map((s) => [s.id, s.state]));
}

function renderFleet(fleet, now) {
  const servers = fleet.servers || [];
  noteStateChanges(servers, now);
  const tbody = $("fleet").tBodies[0];
  tbody.replaceChildren(...servers.flatMap(serverRow));
  const counts = {};
  for (const s of servers) counts[s.state] = (counts[s.state] || 0) + 1;
  $("fleet-count").textContent = fmt(servers.length);
  $("fleet-states").textContent = Object.entries(counts)
    .map(([k, v]) => `${k} ${v}`)
    .join(" · ");
  const panic = $("panic");
  panic.hidden = !fleet.panic;
  panic.textContent = fleet.panic ? `Fleet panic: ${fleet.panic_detail}` : "";
}

// ---------------------------------------------------------------- loop

let polling = false;
async function poll() {
  if (polling) return;
  polling = true;
  try {
    const [who, ready] = await Promise.all([api("/v1/whoami"), api("/readyz")]);
    renderReadiness(ready);
    state.access = who.body?.access || "none";
    $("access").textContent = `access: ${state.access}${state.token ? " (token)" : ""}`;
    if (state.access === "none") {
      $("credential").open = true;
      $("fleet").tBodies[0].replaceChildren(
        el("tr", {}, el("td", { colspan: "11" },
           who.body?.tokens_configured
             ? "This replica requires an admin token: enter it above."
             : "Without an admin token only loopback may read the fleet (e.g. kubectl port-forward).")));
      return;
    }
    const [rep, fleet] = await Promise.all([api("/v1/replica"), api("/v1/servers")]);
    const now = Date.now();
    if (rep.status === 200) renderReplica(rep.body, now);
    if (fleet.status === 200) renderFleet(fleet.body, now);
    $("updated").textContent = `updated ${new Date(now).toLocaleTimeString()}`;
  } catch (err) {
    setStatus(`admin API unreachable: ${err.message}`, "bad");
  } finally {
    polling = false;
  }
}

$("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  state.token = $("token").value.trim();
  $("token").value = "";
  if (state.token) sessionStorage.setItem(TOKEN_KEY, state.token);
  poll();
});
$("forget").addEventListener("click", () => {
  state.token = "";
  sessionStorage.removeItem(TOKEN_KEY);
  poll();
});

poll();
setInterval(poll, POLL_MS);
