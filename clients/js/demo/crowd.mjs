// A crowd of simulated people in virtual spaces, each a VRouterClient: they join, walk around a
// 2D map, watch and look up the people near them, follow `migrate`, and report media failures when
// their video server is broken. A small page draws each space with users coloured by video server.
//
//   node clients/js/demo/crowd.mjs --urls wss://127.0.0.1:8443/v1/client --ca .dev/cert.pem \
//        --secret-file .dev/auth-secret --users 300 --spaces 4 --view 127.0.0.1:8090 \
//        [--broken sim-3@60] [--duration-s 0]
//
// Tokens: a real deployment's backend signs them; this demo signs its own with the dev secret
// (HS256, PROTOCOL.md §7.1). --broken ID@S: from S seconds on, users on server ID get no media and
// report `no_media` (what a browser notices about a black hole), a few seconds apart.

import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

import WebSocket from 'ws';

import { VRouterClient } from '../src/index.js';

const { values: opt } = parseArgs({
  options: {
    urls: { type: 'string' },
    ca: { type: 'string' },
    'secret-file': { type: 'string' },
    users: { type: 'string', default: '300' },
    spaces: { type: 'string', default: '4' },
    view: { type: 'string', default: '127.0.0.1:8090' },
    broken: { type: 'string' },
    'duration-s': { type: 'string', default: '0' },
    'ramp-per-s': { type: 'string', default: '100' },
  },
});
if (!opt.urls || !opt['secret-file']) {
  console.error('usage: crowd.mjs --urls URL[,URL...] --secret-file FILE [--ca PEM] [--users N] ...');
  process.exit(2);
}

const MAP = 1000; // the map is MAP x MAP
const NEAR = 180; // people within this distance are watched
const MAX_WATCHED = 12;
const STEP_MS = 500;
const urls = opt.urls.split(',');
const secret = readFileSync(opt['secret-file'], 'utf8').trim();
const ca = opt.ca ? readFileSync(opt.ca) : undefined;
const started = Date.now();
const [brokenServer, brokenAt] = opt.broken ? opt.broken.split('@') : [null, '0'];
const brokenAfterMs = Number(brokenAt) * 1000;

// `ws` takes TLS options as a third argument: trust the dev certificate, verify everything else.
class DemoWebSocket extends WebSocket {
  constructor(url, protocols) {
    super(url, protocols, ca ? { ca } : {});
  }
}

function token(user, space) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub: user, space, iat: now, exp: now + 3600 })}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}

const stats = { joined: 0, migrations: 0, moved: 0, left: 0, reports: 0, errors: new Map() };
const countError = (code) => stats.errors.set(code, (stats.errors.get(code) || 0) + 1);

class Person {
  constructor(index, space) {
    this.user = `user-${index}`;
    this.space = space;
    this.x = Math.random() * MAP;
    this.y = Math.random() * MAP;
    this.pickTarget();
    this.server = null;
    this.noMediaSince = null;
    this.lastReport = 0;
    this.client = new VRouterClient({
      urls,
      token: () => token(this.user, this.space),
      WebSocket: DemoWebSocket,
    });
    this.client.on('assigned', (e) => this.setServer(e.server.id));
    this.client.on('migrate', (e) => {
      stats.migrations += 1;
      this.setServer(e.server.id);
    });
    this.client.on('moved', () => (stats.moved += 1));
    this.client.on('left', () => (stats.left += 1));
    this.client.on('error', (e) => countError(e.code));
  }

  setServer(id) {
    if (id !== this.server) this.noMediaSince = null;
    this.server = id;
  }

  pickTarget() {
    this.tx = Math.random() * MAP;
    this.ty = Math.random() * MAP;
  }

  async start() {
    try {
      await this.client.connect();
      await this.client.join();
      stats.joined += 1;
    } catch (e) {
      countError(e.code || 'join_failed');
    }
  }

  // One step: walk, watch who is near, notice a broken video server.
  step(everyone) {
    const dx = this.tx - this.x;
    const dy = this.ty - this.y;
    const d = Math.hypot(dx, dy);
    if (d < 10) this.pickTarget();
    else {
      this.x += (dx / d) * 15;
      this.y += (dy / d) * 15;
    }
    if (this.client.state !== 'open' || !this.server) return;
    const near = everyone
      .filter((p) => p !== this && p.space === this.space && Math.hypot(p.x - this.x, p.y - this.y) < NEAR)
      .slice(0, MAX_WATCHED)
      .map((p) => p.user);
    const watching = new Set(this.client.watching);
    const add = near.filter((u) => !watching.has(u));
    const drop = [...watching].filter((u) => !near.includes(u));
    if (add.length) this.client.watch(add).catch((e) => countError(e.code));
    if (drop.length) this.client.unwatch(drop).catch((e) => countError(e.code));
    if (Math.random() < 0.1 && near.length) this.client.lookup(near).catch((e) => countError(e.code));
    this.checkMedia();
  }

  // A black hole takes media and forwards none: after a few seconds of silence the person's
  // browser reports it, then again every few seconds while it lasts.
  checkMedia() {
    const broken = brokenServer && this.server === brokenServer && Date.now() - started >= brokenAfterMs;
    if (!broken) {
      this.noMediaSince = null;
      return;
    }
    const now = Date.now();
    this.noMediaSince ??= now;
    if (now - this.noMediaSince < 3000 || now - this.lastReport < 5000) return;
    this.lastReport = now;
    stats.reports += 1;
    this.client.report('no_media', { server: this.server }).catch((e) => countError(e.code));
  }
}

const count = Number(opt.users);
const spaces = Array.from({ length: Number(opt.spaces) }, (_, i) => `space-${i}`);
const people = [];
const rampPerStep = Math.max(1, Math.round((Number(opt['ramp-per-s']) * STEP_MS) / 1000));

const walker = setInterval(() => {
  for (let i = 0; i < rampPerStep && people.length < count; i += 1) {
    const p = new Person(people.length, spaces[people.length % spaces.length]);
    people.push(p);
    p.start();
  }
  for (const p of people) p.step(people);
}, STEP_MS);

// ---- the space view: a page and its JSON ----
const PAGE = `<!doctype html><meta charset="utf-8"><title>vrouter demo: the spaces</title>
<style>body{font:14px system-ui,sans-serif;margin:1rem;background:#f7f7f5}canvas{background:#fff;border:1px solid #ccc;margin:4px}
.legend span{display:inline-block;margin-right:1rem}.sw{display:inline-block;width:12px;height:12px;border-radius:6px;margin-right:4px;vertical-align:middle}</style>
<h1>The spaces</h1><p>Each dot is a simulated person, coloured by the video server the router gave them.</p>
<div class="legend" id="legend"></div><div id="maps"></div>
<script>
const colors = {}; const palette = ["#1f77b4","#2ca02c","#9467bd","#ff7f0e","#8c564b","#e377c2","#17becf","#bcbd22"];
const color = (id) => id ? (colors[id] ??= palette[Object.keys(colors).length % palette.length]) : "#bbb";
async function draw() {
  const s = await (await fetch("state.json")).json();
  const maps = document.getElementById("maps");
  for (const space of s.spaces) {
    let c = document.getElementById(space);
    if (!c) { c = Object.assign(document.createElement("canvas"), {id: space, width: 320, height: 320, title: space}); maps.append(c); }
    const g = c.getContext("2d"); g.clearRect(0, 0, 320, 320); g.fillStyle = "#666"; g.fillText(space, 6, 14);
    for (const p of s.people.filter((p) => p.space === space)) {
      g.fillStyle = color(p.server); g.beginPath(); g.arc(p.x * 0.32, p.y * 0.32, 4, 0, 7); g.fill();
    }
  }
  const legend = document.getElementById("legend"); legend.replaceChildren();
  for (const [id, n] of Object.entries(s.byServer)) {
    const item = document.createElement("span"); const sw = document.createElement("i");
    sw.className = "sw"; sw.style.background = color(id); item.append(sw, id + ": " + n); legend.append(item);
  }
}
draw(); setInterval(draw, 500);
</script>`;

function snapshot() {
  const byServer = {};
  for (const p of people) if (p.server) byServer[p.server] = (byServer[p.server] || 0) + 1;
  return {
    spaces,
    byServer,
    people: people.map((p) => ({ user: p.user, space: p.space, x: Math.round(p.x), y: Math.round(p.y), server: p.server })),
  };
}

const [viewHost, viewPort] = opt.view.split(':');
const view = createServer((req, res) => {
  if (req.url === '/state.json') {
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify(snapshot()));
  } else if (req.url === '/') {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(PAGE);
  } else {
    res.writeHead(404).end();
  }
});
view.listen(Number(viewPort), viewHost);

const reporter = setInterval(() => {
  const { byServer } = snapshot();
  const errors = [...stats.errors].map(([k, v]) => `${k}=${v}`).join(' ') || 'none';
  const servers = Object.entries(byServer).map(([k, v]) => `${k}:${v}`).join(' ');
  console.log(
    `[crowd ${Math.round((Date.now() - started) / 1000)}s] people ${people.length} joined ${stats.joined} ` +
      `| ${servers} | migrations ${stats.migrations} moved ${stats.moved} left ${stats.left} ` +
      `reports ${stats.reports} | errors ${errors}`,
  );
}, 10_000);

async function stop() {
  clearInterval(walker);
  clearInterval(reporter);
  view.close();
  await Promise.allSettled(people.map((p) => p.client.close()));
  process.exit(0);
}
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
const duration = Number(opt['duration-s']);
if (duration > 0) setTimeout(stop, duration * 1000);
