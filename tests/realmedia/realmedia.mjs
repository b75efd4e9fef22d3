// The incident with real media: real Janus instances (each in its own network namespace, with
// vrouter's Janus agent beside it), real vrouter replicas, and people who are headless Chromium
// pages sending a fake camera through the JavaScript client and janus.js. One Janus then fails
// for real (the kernel drops its outgoing RTP) and the test follows the loop: evidence →
// ejection → migration → media flowing again everywhere.
//
// Runs inside the client namespace that tests/realmedia/run creates (which also removes it and
// everything in it afterwards). Options (the run script passes them on):
//   --store memory|redis    --replicas N    --people N
//   --failure egress|output     egress: RTP dropped as it leaves the Janus's interface (Janus's own
//                               counters keep growing: only the people's watchdogs can tell);
//                               output: dropped in Janus's namespace before its interface (Janus
//                               counts nothing out: the router's counter rule must catch it, and
//                               the watchdogs are off so that no client report helps)
//   --report FILE           the timeline as JSON
//   --restart               afterwards, kill the failed Janus and start it again (agent: no stats
//                           while it is down, a counter reset after)
//   --demo                  set up, then serve the wall (people's pages, the dashboard, black-hole
//                           buttons) on the Unix socket $VRM_DEMO_SOCKET until stopped

import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { chromium } from 'playwright-core';

import { mintToken, serveStatic } from '../support/web.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(here, '../..');
const { values: opt } = parseArgs({
  options: {
    store: { type: 'string', default: 'memory' },
    replicas: { type: 'string', default: '1' },
    people: { type: 'string', default: '5' },
    failure: { type: 'string', default: 'egress' },
    report: { type: 'string' },
    demo: { type: 'boolean', default: false },
    restart: { type: 'boolean', default: false },
  },
});
const LAYOUT = JSON.parse(process.env.VRM_LAYOUT);
const VROUTER = process.env.VROUTER_BIN;
const ARTIFACTS = process.env.VROUTER_REALMEDIA_ARTIFACTS || join(tmpdir(), 'vrouter-realmedia-artifacts');
const AGENT = join(REPO, 'agents/janus/vrouter-janus-agent');
const CLIENT_SECRET = 'realmedia-client-secret';
const VIDEO_SECRET = 'realmedia-video-server-secret';
const JANUS_SECRET = 'realmedia-janus-admin';
const REPLICA_KEY = 'realmedia-replica-key-0123';  // fleet messages between replicas
const REPORT_MS = 500;
const PEOPLE = Number(opt.people);
const REPLICAS = Number(opt.replicas);
const WATCHDOG = opt.failure === 'egress';
const t0 = Date.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const stamp = () => `${((Date.now() - t0) / 1000).toFixed(1)}s`;
const say = (...a) => console.log(`[realmedia ${stamp()}]`, ...a);

const procs = [];
const logs = [];
let browserRef = null;
const dir = mkdtempSync(join(tmpdir(), 'vrouter-realmedia-'));

function run(name, cmd, args, { netns, env = {} } = {}) {
  const argv = netns ? ['ip', ['netns', 'exec', netns, cmd, ...args]] : [cmd, args];
  const p = spawn(argv[0], argv[1], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  p.lines = [];
  for (const stream of [p.stdout, p.stderr]) {
    createInterface({ input: stream }).on('line', (l) => {
      logs.push(`${name}: ${l}`);
      p.lines.push(l);
      p.emit('line', l);
    });
  }
  p.on('exit', (code, sig) => logs.push(`${name}: exited ${code ?? sig}`));
  procs.push(p);
  return p;
}

function waitLine(p, match, ms, what) {
  return new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    const check = (l) => {
      const m = match(l);
      if (m) {
        clearTimeout(timer);
        p.off('line', check);
        res(m);
      }
    };
    p.on('line', check);
    p.lines.forEach(check);
  });
}

async function eventually(check, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms: ${what}`);
    await sleep(200);
  }
}

function freePort() {
  return new Promise((res) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

const json = (l) => { try { return JSON.parse(l); } catch { return null; } };

// ---- the stack ----------------------------------------------------------------------------------

async function startRouters() {
  let store = 'memory';
  if (opt.store === 'redis') {
    const port = await freePort();
    const redis = run('redis', 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']);
    await waitLine(redis, (l) => l.includes('Ready to accept connections'), 10_000, 'redis-server');
    store = `redis://127.0.0.1:${port}`;
  }
  const routers = [];
  for (let i = 0; i < REPLICAS; i++) {
    const p = run(`vrouter-${i}`, VROUTER, [
      // 0.0.0.0 of the client namespace: its loopback (people) and its bridge (agents).
      '--listen', '0.0.0.0:0', '--admin-listen', '127.0.0.1:0', '--store', store,
      '--replica-id', `replica-${i}`, '--threads', '1',
      '--report-interval-ms', String(REPORT_MS),
      // Five people: three distinct reporters are a real quorum here (the default 5 is sized for
      // rooms where a server has more users than this whole test).
      '--eject-failure-min-reporters', '3',
      '--migrate-cooldown-ms', '200', '--drain-window-ms', '300',
      // The test's Janus servers speak plain ws inside the namespaces (no certificates there).
      '--video-server-url-schemes', 'wss,https,ws',
      // Each person's fake camera and microphone send ~70 packets/s, and the failing server is
      // home of two or three of the five people: the default 200/s, sized for real rooms, calls
      // a two-person server idle and never judges its counters. 100/s judges two people.
      ...(opt.failure === 'output' ? ['--forwarding-min-packets-in', '100'] : []),
    ], { env: { VROUTER_AUTH_SECRET: CLIENT_SECRET, VROUTER_VIDEO_SERVER_SECRET: VIDEO_SECRET, VROUTER_REPLICA_KEY: REPLICA_KEY } });
    const listening = await waitLine(p, (l) => { const e = json(l); return e?.event === 'listening' && e; }, 20_000, 'vrouter listening');
    const port = Number(new URL(listening.ws).port);
    routers.push({ port, admin: listening.admin, proc: p });
  }
  return routers;
}

async function startJanus(routers) {
  const servers = [];
  for (const [i, s] of LAYOUT.servers.entries()) {
    const cfgDir = join(dir, `janus-${i + 1}`);
    execFileSync('python3', [join(here, 'janus_config.py'), cfgDir, s.veth, s.address, String(20000 + i * 1000), JANUS_SECRET]);
    const start = () => run(`janus-${i + 1}`, 'janus', ['-C', join(cfgDir, 'janus.jcfg'), '-F', cfgDir], { netns: s.netns });
    servers.push({ ...s, id: `janus-${i + 1}`, url: `ws://${s.address}:8188/`, janus: start(), start });
  }
  for (const s of servers) {
    await waitLine(s.janus, (l) => l.includes('WebSockets server started') || l.includes('WebSockets thread started'), 15_000, `${s.id} started`);
  }
  for (const [i, s] of servers.entries()) {
    // Each agent starts on a different replica; it has the whole list to fail over to.
    const list = routers.map((_, k) => routers[(i + k) % routers.length]);
    s.agent = run(`agent-${s.id}`, AGENT, [
      '--routers', list.map((r) => `ws://${LAYOUT.client_address}:${r.port}/v1/video-server`).join(','),
      // Three people per Janus (a small machine), so that a room of five spans two servers; the
      // CPU is Janus's own (three Janus and Chromium share this host).
      '--id', s.id, '--url', s.url, '--region', 'test', '--capacity', '3', '--janus-pid', String(s.janus.pid),
    ], {
      netns: s.netns,
      env: { VROUTER_AGENT_JANUS_ADMIN_SECRET: JANUS_SECRET, VROUTER_AGENT_VIDEO_SERVER_SECRET: VIDEO_SECRET, VROUTER_AGENT_LOG_REPORTS: '1' },
    });
  }
  return servers;
}

async function fleet(router) {
  const res = await fetch(`${router.admin}/v1/servers`);
  return res.json();
}

// Static files: the client library, janus.js with its adapter, the pages.
const servePages = () => serveStatic({
  '/lib/': join(REPO, 'clients/js/src'),
  '/pages/': join(here, 'pages'),
  '/janus/janus.js': '/usr/share/javascript/janus-gateway/janus.js',
  '/janus/adapter.js': '/usr/share/javascript/webrtc-adapter/adapter.js',
});

// Every person reaches the router from an address of their own (127.0.0.11, .12, ...), as people
// do: the router counts failure reporters once per address, so five pages behind one address
// would be one reporter. A relay per person binds the source address.
async function relayFor(index, routerPort) {
  const localAddress = `127.0.0.${11 + index}`;
  const server = net.createServer((inbound) => {
    const outbound = net.connect({ host: '127.0.0.1', port: routerPort, localAddress });
    inbound.pipe(outbound).pipe(inbound);
    const end = () => { inbound.destroy(); outbound.destroy(); };
    inbound.on('error', end);
    outbound.on('error', end);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return server;
}

const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--mute-audio',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
  '--disable-features=WebRtcHideLocalIpsWithMdns', '--autoplay-policy=no-user-gesture-required',
];

// ---- the failure --------------------------------------------------------------------------------

// RTP only (version 2, dynamic payload type 96-127): STUN, DTLS and RTCP keep flowing, so ICE
// and DTLS stay up and the subscribers still get Janus's sender reports.
const RTP = '@th,64,2 2 @th,73,2 3';

function applyFailure(server, kind) {
  const rules = kind === 'egress'
    ? `table netdev vrm_blackhole {
  chain egress {
    type filter hook egress device "${server.veth}" priority 0; policy accept;
    ip protocol udp ${RTP} counter drop
  }
}
`
    : `table inet vrm_blackhole {
  chain output {
    type filter hook output priority 0; policy accept;
    meta l4proto udp ${RTP} counter drop
  }
}
`;
  const file = join(dir, `nft-${server.id}.conf`);
  writeFileSync(file, rules);
  execFileSync('ip', ['netns', 'exec', server.netns, 'nft', '-f', file]);
}

function removeFailure(server) {
  for (const family of ['netdev', 'inet']) {
    try {
      execFileSync('ip', ['netns', 'exec', server.netns, 'nft', 'delete', 'table', family, 'vrm_blackhole'], { stdio: 'ignore' });
    } catch { /* not there */ }
  }
}

// ---- the test -----------------------------------------------------------------------------------

async function snapshots(pages) {
  return Promise.all(pages.map((p) => p.page.evaluate(() => window.vrm?.snapshot() ?? null)));
}

// Every subscription's inbound video grows between two snapshots `ms` apart.
async function flowing(pages, ms, { avoid } = {}) {
  const a = await snapshots(pages);
  await sleep(ms);
  const b = await snapshots(pages);
  const stuck = [];
  for (let i = 0; i < pages.length; i++) {
    if (!a[i] || !b[i]) { stuck.push(`${pages[i].user}: no page state`); continue; }
    const others = pages.filter((p) => p.user !== pages[i].user).map((p) => p.user);
    for (const u of others) {
      const before = a[i].subs[u];
      const after = b[i].subs[u];
      if (!after || after.packets == null || before?.packets == null || after.server !== before.server || after.packets <= before.packets) {
        stuck.push(`${pages[i].user}<-${u}@${after?.server ?? '?'}`);
      } else if (avoid && after.server === avoid) {
        stuck.push(`${pages[i].user}<-${u} still on ${avoid}`);
      }
    }
  }
  return { ok: stuck.length === 0, stuck, states: b };
}

async function main() {
  const routers = await startRouters();
  say(`vrouter: ${routers.length} replica(s), store ${opt.store}`);
  const servers = await startJanus(routers);
  for (const r of routers) {
    await eventually(async () => {
      const f = await fleet(r);
      return servers.every((s) => f.servers.find((v) => v.id === s.id)?.state === 'active');
    }, 30_000, 'every Janus active on every replica');
  }
  say(`3 Janus registered and active: ${servers.map((s) => `${s.id}@${s.address}`).join(', ')}`);

  const { server: pageServer, origin } = await servePages();
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
  browserRef = browser;
  const users = Array.from({ length: PEOPLE }, (_, i) => `person-${i + 1}`);
  const pages = [];
  const relays = [];
  for (const [i, user] of users.entries()) {
    const router = routers[i % routers.length];
    const relay = await relayFor(i, router.port);
    relays.push(relay);
    const context = await browser.newContext({ viewport: { width: 900, height: 420 } });
    const page = await context.newPage();
    page.on('pageerror', (e) => logs.push(`${user} page error: ${e.message}`));
    page.on('console', (m) => { if (m.type() === 'error') logs.push(`${user} console: ${m.text()}`); });
    const q = new URLSearchParams({
      user, token: mintToken(CLIENT_SECRET, user, 'realmedia'), router: `ws://127.0.0.1:${relay.address().port}/v1/client`,
      others: users.filter((u) => u !== user).join(','), watchdog: WATCHDOG ? '1' : '0',
    });
    await page.goto(`${origin}/pages/person.html?${q}`);
    pages.push({ user, page, replica: router });
  }
  say(`${PEOPLE} people opened (one Chromium context each), on ${routers.length} replica(s)`);
  const joined = Date.now();
  await eventually(async () => (await flowing(pages, 1000)).ok, 90_000, 'every person receives every other person\'s video');
  say(`media flowing: ${PEOPLE} publishers, ${PEOPLE * (PEOPLE - 1)} subscriptions, ${((Date.now() - joined) / 1000).toFixed(1)} s after the pages opened`);

  // No healthy server may have been ejected while people arrived and media started.
  for (const r of routers) {
    const early = (await fleet(r)).servers.filter((v) => v.ejection.times > 0);
    if (early.length) {
      throw new Error(`healthy server(s) ejected during warm-up on replica ${r.port}: ${early.map((v) => `${v.id} (${v.ejection.reason})`).join(', ')}`);
    }
  }
  const before = await snapshots(pages);
  const homes = new Map();
  for (const s of before) homes.set(s.published, (homes.get(s.published) || 0) + 1);
  const target = servers.slice().sort((a, b) => (homes.get(b.id) || 0) - (homes.get(a.id) || 0))[0];
  const victims = before.filter((s) => s.published === target.id).map((s) => s.user);
  say(`placement: ${[...homes].map(([k, v]) => `${k}=${v}`).join(' ')}; failing ${target.id} (${opt.failure}), home of ${victims.join(', ')}`);

  if (opt.demo) return demo(servers, pages, routers);

  const dropAt = Date.now();
  applyFailure(target, opt.failure);
  say(`${target.id}: outgoing RTP dropped by the kernel (${opt.failure})`);

  // Follow the router and the people until the loop closes.
  let ejectedAt = null;
  let ejection = null;
  const deadline = dropAt + 60_000;
  while (!ejectedAt) {
    if (Date.now() > deadline) {
      const views = await Promise.all(routers.map(async (r) => (await fleet(r)).servers.find((x) => x.id === target.id)));
      logs.push(`router views of ${target.id}: ${JSON.stringify(views)}`);
      throw new Error(`${target.id} was not ejected within 60 s`);
    }
    for (const r of routers) {
      const v = (await fleet(r)).servers.find((x) => x.id === target.id);
      if (v.state === 'ejected' && !ejectedAt) {
        ejectedAt = Date.now();
        ejection = { replica: r.port, reason: v.ejection.reason, failure_reporters: v.signals.failure_reporters,
          forwarding: v.signals.forwarding, consecutive_bad_reports: v.signals.consecutive_bad_reports };
      }
    }
    await sleep(100);
  }
  say(`${target.id} ejected: ${JSON.stringify(ejection)}`);
  const restored = await eventually(async () => {
    const f = await flowing(pages, 1000, { avoid: target.id });
    return f.ok && f;
  }, 60_000, 'media flowing again for everyone, with no one on the failed server');
  const restoredAt = Date.now();
  say('media flowing again for everyone');

  // The timeline, from the people's own event logs (same clock: one machine).
  const events = restored.states.flatMap((s) => s.events.map((e) => ({ ...e, person: s.user })));
  const after = (kind, pred = () => true) => events.filter((e) => e.kind === kind && e.t >= dropAt && pred(e)).sort((a, b) => a.t - b.t);
  const reports = after('media', (e) => e.server === target.id && e.reported);
  const migrations = after('migrate', (e) => e.from === target.id);
  const republished = after('published', (e) => victims.includes(e.person) && e.server !== target.id);
  const firstEvidence = WATCHDOG ? reports[0]?.t : ejectedAt;
  const placedOnTarget = events.filter((e) => (e.kind === 'assigned' || e.kind === 'migrate') && e.server === target.id && firstEvidence && e.t >= firstEvidence);
  const agentEjected = target.agent.lines.map(json).find((e) => e?.event === 'state' && e.state === 'ejected');
  const ms = (t) => (t == null ? null : t - dropAt);
  const report = {
    case: { store: opt.store, replicas: REPLICAS, people: PEOPLE, failure: opt.failure, watchdogs: WATCHDOG, report_interval_ms: REPORT_MS },
    failed_server: target.id,
    its_people: victims,
    ejection,
    timeline_ms: {
      drop: 0,
      first_report: ms(reports[0]?.t),
      reports_before_ejection: reports.filter((r) => r.t <= ejectedAt).length,
      distinct_reporters: new Set(reports.map((r) => r.person)).size,
      ejected_router_admin_poll: ms(ejectedAt),
      ejected_agent_told: agentEjected ? Math.round(agentEjected.ts * 1000) - dropAt : null,
      first_migrate: ms(migrations[0]?.t),
      last_migrate: ms(migrations.at(-1)?.t),
      last_republished: ms(republished.at(-1)?.t),
      media_restored_everywhere: ms(restoredAt),
    },
    placed_on_failed_server_after_first_evidence: placedOnTarget.length,
    moved_events_seen: after('moved', (e) => victims.includes(e.user)).length,
    wall_s: (Date.now() - t0) / 1000,
  };
  console.log(JSON.stringify(report, null, 2));
  if (opt.report) mkdirSync(dirname(resolve(opt.report)), { recursive: true });
  if (opt.report) writeFileSync(opt.report, `${JSON.stringify(report, null, 2)}\n`);

  const problems = [];
  const finals = restored.states;
  if (WATCHDOG && reports.length === 0) problems.push('no watchdog reported the black hole');
  if (!WATCHDOG && ejection.reason !== 'not_forwarding') problems.push(`ejected for ${ejection.reason}, expected not_forwarding`);
  if (!WATCHDOG && after('media', (e) => e.reported).length > 0) problems.push('a client reported although watchdogs are off');
  for (const v of victims) {
    const watchers = finals.filter((x) => x.user !== v && !after('moved', (e) => e.person === x.user && e.user === v).length);
    if (watchers.length) problems.push(`${watchers.map((x) => x.user).join(', ')} got no moved for ${v}`);
  }
  if (placedOnTarget.length > 0) problems.push(`${placedOnTarget.length} placements on ${target.id} after the first evidence`);
  if (migrations.length < victims.length) problems.push(`${migrations.length} migrations for ${victims.length} people on ${target.id}`);
  if (finals.some((s) => s.published === target.id)) problems.push('someone still publishes on the failed server');
  for (const r of routers) {
    const v = (await fleet(r)).servers.find((x) => x.id === target.id);
    if (v.state !== 'ejected') problems.push(`replica ${r.port}: ${target.id} is ${v.state}, not ejected`);
  }
  if (opt.restart) await restartJanus(target, routers[0]);
  if (routers.length > 1) await replicaLeaves(routers, servers);
  await browser.close();
  pageServer.close();
  relays.forEach((r) => r.close());
  removeFailure(target);
  if (problems.length) throw new Error(problems.join('; '));
  say('passed');
}

// The failed Janus is killed and started again: while it is down the agent sends nothing (no
// invented numbers: the router's report age grows); once it is back the agent's sentinel session
// is gone, its totals start over, and the router counts a counter reset.
async function restartJanus(server, router) {
  const view = async () => (await fleet(router)).servers.find((x) => x.id === server.id);
  const resetsBefore = (await view()).reports.resets;
  const agentSaid = (event) => server.agent.lines.map(json).filter((e) => e?.event === event).length;
  const unreachableBefore = agentSaid('janus_unreachable');
  const restartedBefore = agentSaid('janus_restarted');
  server.janus.kill('SIGKILL');
  await eventually(() => agentSaid('janus_unreachable') > unreachableBefore, 10_000, 'the agent notices Janus is down');
  await eventually(async () => (await view()).signals.last_report_age_ms > 3 * REPORT_MS, 10_000, 'no stats while Janus is down');
  const downFor = (await view()).signals.last_report_age_ms;
  server.janus = server.start();
  await eventually(() => agentSaid('janus_restarted') > restartedBefore, 20_000, 'the agent notices the restart');
  await eventually(async () => (await view()).reports.resets > resetsBefore, 10_000, 'the router counts a counter reset');
  say(`${server.id} killed and restarted: no stats while down (report age reached ${downFor} ms), then a counter reset`);
}

// The demo: the wall (pages/wall.html) on a Unix socket, because this process lives in the client
// namespace and the person watching does not; tests/realmedia/run serves it on loopback. Every
// other path goes to the first replica's admin port (the operator dashboard and its API).
// A replica shuts down (SIGTERM: it drains and closes its video servers with 1001): every agent
// registered there moves to another replica of its list and keeps reporting.
async function replicaLeaves(routers, servers) {
  const leaving = routers[0];
  const url = `:${leaving.port}/`;
  const registeredAt = (s) => s.agent.lines.map(json).filter((e) => e?.event === 'registered').at(-1)?.url ?? '';
  const moving = servers.filter((s) => registeredAt(s).includes(url));
  leaving.proc.kill('SIGTERM');
  await eventually(() => moving.every((s) => registeredAt(s) && !registeredAt(s).includes(url)), 20_000,
    `agents of the leaving replica (${moving.map((s) => s.id).join(', ') || 'none'}) registered elsewhere`);
  const other = routers[1];
  await eventually(async () => {
    const f = await fleet(other);
    return servers.every((s) => (f.servers.find((v) => v.id === s.id)?.signals.last_report_age_ms ?? 1e9) < 4 * REPORT_MS);
  }, 10_000, 'every Janus reporting to the remaining replica');
  say(`replica ${leaving.port} shut down: ${moving.length} agent(s) moved to the other replica, every Janus still reporting`);
}

async function demo(servers, pages, routers) {
  const socket = process.env.VRM_DEMO_SOCKET;
  const admin = new URL(routers[0].admin);
  const wall = createServer(async (req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    try {
      if (path === '/demo' || path === '/demo/') {
        res.writeHead(200, { 'content-type': 'text/html' });
        return res.end(readFileSync(join(here, 'pages/wall.html')));
      }
      if (path === '/demo/state') {
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ people: pages.map((p) => p.user), servers: servers.map((s) => s.id) }));
      }
      const shot = path.match(/^\/demo\/screen\/([\w-]+)$/);
      if (shot) {
        const p = pages.find((x) => x.user === shot[1]);
        if (!p) return res.writeHead(404).end();
        res.writeHead(200, { 'content-type': 'image/jpeg', 'cache-control': 'no-store' });
        return res.end(await p.page.screenshot({ type: 'jpeg', quality: 60 }));
      }
      const hole = path.match(/^\/demo\/blackhole\/([\w-]+)$/);
      if (hole && req.method === 'POST') {
        const s = servers.find((x) => x.id === hole[1]);
        if (!s) return res.writeHead(404).end();
        removeFailure(s);
        applyFailure(s, opt.failure);
        say(`${s.id}: outgoing RTP dropped (${opt.failure})`);
        return res.writeHead(204).end();
      }
      if (path === '/demo/restore' && req.method === 'POST') {
        servers.forEach(removeFailure);
        say('every Janus forwards again');
        return res.writeHead(204).end();
      }
      const target = new URL(req.url, 'http://x');
      const upstream = await fetch(`${admin.origin}${target.pathname}${target.search}`, { method: req.method });
      res.writeHead(upstream.status, Object.fromEntries(upstream.headers));
      return res.end(Buffer.from(await upstream.arrayBuffer()));
    } catch (e) {
      res.writeHead(500).end(String(e));
    }
  });
  await new Promise((r) => wall.listen(socket, r));
  say('demo ready: open the address tests/realmedia/run printed; Ctrl-C stops everything');
  await new Promise((r) => process.once('SIGTERM', r).once('SIGINT', r));
  wall.close();
}

try {
  await main();
  process.exitCode = 0;
} catch (e) {
  console.error(`realmedia: FAILED: ${e.message}`);
  const file = join(ARTIFACTS, `realmedia-${opt.store}-${opt.failure}.log`);
  mkdirSync(ARTIFACTS, { recursive: true });
  writeFileSync(file, `${logs.join('\n')}\n`);
  console.error(`---- every process's log: ${file}; the last lines:\n${logs.filter((l) => !l.startsWith('janus-')).slice(-40).join('\n')}`);
  process.exitCode = 1;
} finally {
  await browserRef?.close().catch(() => {});
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGTERM');
  await sleep(300);
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
  process.exit(process.exitCode);
}
