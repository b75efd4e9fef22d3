// What the browser tests start: a vrouter (ws, wss with a fresh self-signed certificate, admin),
// simulated video servers, a static server for the client library and the test pages, and
// Debian's chromium through playwright-core. Loopback only; everything is stopped by `stop()`.

import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

import { mintToken, serveStatic } from '../support/web.mjs';

const here = dirname(fileURLToPath(import.meta.url));
export const REPO = resolve(here, '../..');
const VROUTER = process.env.VROUTER_BIN;
const SIM = process.env.VROUTER_SIM_BIN;
export const ARTIFACTS = process.env.VROUTER_BROWSER_ARTIFACTS || join(tmpdir(), 'vrouter-browser-artifacts');
const SECRET = 'browser-test-client-secret';
const SERVER_SECRET = 'browser-test-video-server-secret';

// Flags Debian's headless chromium needs here (found by trial, running as root): without the
// background-networking ones it keeps trying to reach the internet; the certificate flag accepts
// the test's self-signed certificate for wss.
const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--ignore-certificate-errors',
];

export function token(user, space) {
  return mintToken(SECRET, user, space, 600);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function eventually(check, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await sleep(100);
  }
}

export class Stack {
  procs = [];
  logs = [];
  browser = null;

  // fleet: [{id, capacity}], behaviors: ["sim-2=blackhole@8"]
  async start({ fleet, behaviors = [], routerArgs = [] }) {
    if (!VROUTER || !SIM) throw new Error('set VROUTER_BIN and VROUTER_SIM_BIN');
    mkdirSync(ARTIFACTS, { recursive: true });
    this.dir = mkdtempSync(join(tmpdir(), 'vrouter-browser-'));
    const cert = join(this.dir, 'cert.pem');
    const key = join(this.dir, 'key.pem');
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1',
    ], { stdio: 'ignore' });
    const fleetFile = join(this.dir, 'fleet.json');
    writeFileSync(fleetFile, JSON.stringify(fleet.map((s) => ({
      id: s.id, url: `wss://${s.id}.media.test/rtc`, region: 'eu-west', capacity: s.capacity ?? 200,
    }))));
    const secretFile = join(this.dir, 'video-server-secret');
    writeFileSync(secretFile, SERVER_SECRET);

    const router = this.spawn('vrouter', VROUTER, [
      '--listen', '127.0.0.1:0', '--tls-listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0',
      '--tls-cert', cert, '--tls-key', key, '--video-servers', fleetFile, '--threads', '1',
      '--drain-window-ms', '300', '--migrate-cooldown-ms', '200', ...routerArgs,
    ], { VROUTER_AUTH_SECRET: SECRET, VROUTER_VIDEO_SERVER_SECRET: SERVER_SECRET });
    const listening = await new Promise((resolveListening, reject) => {
      const timer = setTimeout(() => reject(new Error('vrouter did not start')), 20_000);
      createInterface({ input: router.stdout }).on('line', (line) => {
        this.logs.push(`vrouter: ${line}`);
        try {
          const e = JSON.parse(line);
          if (e.event === 'listening') {
            clearTimeout(timer);
            resolveListening(e);
          }
        } catch {
          // not JSON: kept in the log only
        }
      });
    });
    this.wss = listening.wss;
    this.ws = listening.ws;
    this.admin = listening.admin;

    this.spawn('sim', SIM, [
      '--router', this.ws.replace(/\/v1\/client$/, ''), '--admin', this.admin,
      '--secret-file', secretFile, '--servers', String(fleet.length), '--capacity', '200',
      ...behaviors.flatMap((b) => ['--behavior', b]), '--duration', '300',
    ]);
    await this.serveStatic();
    this.browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
    return this;
  }

  spawn(name, bin, args, env = {}) {
    const proc = spawn(bin, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    if (name !== 'vrouter') createInterface({ input: proc.stdout }).on('line', (l) => this.logs.push(`${name}: ${l}`));
    createInterface({ input: proc.stderr }).on('line', (l) => this.logs.push(`${name}: ${l}`));
    this.procs.push(proc);
    return proc;
  }

  // The client library (clients/js/src) and the test pages (tests/browser/pages), same origin.
  async serveStatic() {
    ({ server: this.static, origin: this.origin } = await serveStatic({
      '/lib/': join(REPO, 'clients/js/src'), '/pages/': join(here, 'pages'),
    }));
  }

  async adminGet(path) {
    const res = await fetch(`${this.admin}${path}`);
    return res.json();
  }

  async adminPost(path) {
    const res = await fetch(`${this.admin}${path}`, { method: 'POST' });
    return res.status;
  }

  async newPage() {
    const page = await this.browser.newPage({ viewport: { width: 1400, height: 1000 } });
    page.on('console', (m) => this.logs.push(`page ${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => this.logs.push(`page error: ${e.message}`));
    return page;
  }

  async screenshot(page, name) {
    const file = join(ARTIFACTS, `${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    return file;
  }

  async stop(failed) {
    if (failed) process.stderr.write(`---- logs (last 60 lines)\n${this.logs.slice(-60).join('\n')}\n`);
    await this.browser?.close().catch(() => {});
    this.static?.close();
    for (const p of this.procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    await Promise.all(this.procs.map((p) => (p.exitCode !== null || p.signalCode !== null
      ? null : new Promise((r) => p.once('exit', r)))));
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}
