// Real processes for the integration tests: a redis-server on a free loopback port and vrouter
// replicas sharing it (ports chosen by the router itself: --listen 127.0.0.1:0, read back from
// its "listening" log line). Everything started here is killed by Cluster.stop().
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { WebSocket } from 'ws';

import { mintToken as mintHs256 } from '../../../tests/support/web.mjs';
import { VRouterClient } from '../src/index.js';

export const VROUTER_BIN = process.env.VROUTER_BIN;
export const REDIS_BIN = process.env.REDIS_SERVER_BIN ?? '/usr/bin/redis-server';
export const SECRET = 'js-client-test-secret';
// Replicas sharing a Redis authenticate their fleet messages with it (--replica-key).
const REPLICA_KEY = 'js-client-test-replica-key';

/** Why the integration tests cannot run here, or null. */
export const skipReason = VROUTER_BIN ? null : 'VROUTER_BIN is not set (path of the vrouter binary)';

export const FLEET = [0, 1, 2].map((i) => ({
  id: `sfu-${i}`,
  url: `wss://sfu-${i}.example/rtc`,
  region: 'eu',
  capacity: 1000,
  monitored: false, // no video servers report here: these tests are about the client protocol
}));

/** An HS256 client token (PROTOCOL.md §7.1). */
export function mintToken(user, space = 'room', ttlSeconds = 3600, secret = SECRET) {
  return mintHs256(secret, user, space, ttlSeconds);
}

/** A token from `vrouter mint-token`, the way scripts/run makes them. */
export function mintTokenWithCli(user, space = 'room') {
  return new Promise((resolve, reject) => {
    const child = spawn(VROUTER_BIN, ['mint-token', '--user', user, '--space', space, '--ttl-s', '600'], {
      env: { ...process.env, VROUTER_AUTH_SECRET: SECRET },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`mint-token exited ${code}`))));
  });
}

// Safety net: whatever happens to the test process (a failed hook, a signal from ctest or the
// test runner), no replica or Redis outlives it.
const children = new Set();
function track(proc) {
  children.add(proc);
  proc.once('exit', () => children.delete(proc));
  proc.on('error', (err) => {
    proc.spawnError = err; // e.g. ENOENT: reported by the start-up wait below
    children.delete(proc);
  });
  return proc;
}
process.once('exit', () => {
  for (const proc of children) {
    try {
      proc.kill('SIGCONT');
      proc.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});
for (const sig of ['SIGINT', 'SIGTERM']) process.once(sig, () => process.exit(128 + (sig === 'SIGINT' ? 2 : 15)));

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Resolves once `proc` exits (at once if it already has). */
function exited(proc) {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve(proc.exitCode ?? proc.signalCode);
  if (proc.spawnError) return Promise.resolve('spawn failed');
  return new Promise((resolve) => {
    proc.once('exit', (code, signal) => resolve(code ?? signal));
    proc.once('error', () => resolve('spawn failed'));
  });
}

async function redisPing(port) {
  const { connect } = await import('node:net');
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () => s.write('PING\r\n'));
    s.setTimeout(500, () => s.destroy());
    s.on('data', (d) => {
      s.destroy();
      resolve(d.toString().startsWith('+PONG'));
    });
    s.on('error', () => resolve(false));
    s.on('close', () => resolve(false));
  });
}

export class Redis {
  static async start(dir) {
    const r = new Redis();
    r.port = await freePort();
    r.proc = track(spawn(REDIS_BIN, ['--port', String(r.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' }));
    const deadline = Date.now() + 10_000;
    while (!(await redisPing(r.port))) {
      if (Date.now() > deadline || r.proc.exitCode !== null || r.proc.spawnError) {
        throw new Error(`${REDIS_BIN} did not start${r.proc.spawnError ? `: ${r.proc.spawnError.message}` : ''}`);
      }
      await sleep(50);
    }
    return r;
  }

  async stop() {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGKILL');
    await exited(this.proc);
  }
}

export class Replica {
  /** Starts `vrouter` and waits for its "listening" line. */
  static async start(name, args) {
    const r = new Replica();
    r.name = name;
    r.logs = [];
    r.proc = track(spawn(VROUTER_BIN, ['--replica-id', name, ...args], {
      env: { ...process.env, VROUTER_AUTH_SECRET: SECRET, VROUTER_REPLICA_KEY: REPLICA_KEY },
      stdio: ['ignore', 'pipe', 'pipe'],
    }));
    r.exit = exited(r.proc);
    createInterface({ input: r.proc.stderr }).on('line', (l) => r.logs.push(l));
    const listening = new Promise((resolve, reject) => {
      createInterface({ input: r.proc.stdout }).on('line', (line) => {
        r.logs.push(line);
        try {
          const event = JSON.parse(line);
          if (event.event === 'listening') resolve(event);
        } catch {
          // not a log line
        }
      });
      r.exit.then((code) => reject(new Error(`${name} exited (${code}) before listening:\n${r.logs.join('\n')}`)));
      r.proc.once('error', (err) => reject(new Error(`${VROUTER_BIN}: ${err.message}`)));
    });
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${name} did not listen within 10 s`)), 10_000);
    });
    const event = await Promise.race([listening, timeout]).finally(() => clearTimeout(timer));
    r.url = event.ws; // ws://127.0.0.1:PORT/v1/client
    r.admin = event.admin; // http://127.0.0.1:PORT
    return r;
  }

  get alive() {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  signal(sig) {
    if (this.alive) this.proc.kill(sig);
  }

  async ready(timeoutMs = 10_000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const res = await fetch(`${this.admin}/readyz`);
        if (res.status === 200) return;
      } catch {
        // not yet
      }
      if (Date.now() > deadline) throw new Error(`${this.name} never ready`);
      await sleep(50);
    }
  }

  async post(path) {
    const res = await fetch(`${this.admin}${path}`, { method: 'POST' });
    return res.status;
  }

  async stop() {
    if (this.alive) {
      this.proc.kill('SIGCONT'); // in case a test paused it
      this.proc.kill('SIGKILL');
    }
    await this.exit;
  }
}

/**
 * `count` replicas over one Redis, each started with `args` on top of short timeouts that keep
 * the failover tests quick (lease 1 s, resume grace 5 s, drain window 1.5 s).
 */
export class Cluster {
  static async start({ count = 3, args = [] } = {}) {
    const c = new Cluster();
    c.dir = mkdtempSync(join(tmpdir(), 'vrouter-js-'));
    c.replicas = [];
    c.clients = [];
    try {
      const fleet = join(c.dir, 'fleet.json');
      writeFileSync(fleet, JSON.stringify(FLEET));
      c.redis = await Redis.start(c.dir);
      const common = [
        '--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0', '--threads', '1',
        '--store', `redis://127.0.0.1:${c.redis.port}`, '--video-servers', fleet,
        '--lease-ttl-ms', '1000', '--resume-grace-ms', '5000', '--redis-timeout-ms', '300',
        '--drain-window-ms', '1500', '--report-interval-ms', '250', '--migrate-cooldown-ms', '100',
        '--log-level', 'info',
        ...args,
      ];
      for (let i = 0; i < count; i++) c.replicas.push(await Replica.start(`r${i}`, common));
      await Promise.all(c.replicas.map((r) => r.ready()));
    } catch (err) {
      await c.stop();
      throw err;
    }
    return c;
  }

  get urls() {
    return this.replicas.map((r) => r.url);
  }

  replicaOf(url) {
    return this.replicas.find((r) => r.url === url);
  }

  /** A client for `user`, closed by stop(). Options go to VRouterClient. */
  client(user, options = {}) {
    const client = new VRouterClient({
      urls: this.urls,
      token: () => mintToken(user),
      WebSocket,
      requestTimeoutMs: 3000,
      connectTimeoutMs: 3000,
      backoff: { baseMs: 50, maxMs: 500 },
      ...options,
    });
    client.on('error', (err) => (client.errors ??= []).push(err));
    this.clients.push(client);
    return client;
  }

  /** Last lines of every replica's log, for a failing test's output. */
  logs(lines = 30) {
    return this.replicas.map((r) => `---- ${r.name}\n${r.logs.slice(-lines).join('\n')}`).join('\n');
  }

  async stop() {
    await Promise.all((this.clients ?? []).map((c) => c.close().catch(() => {})));
    await Promise.all((this.replicas ?? []).map((r) => r.stop()));
    await this.redis?.stop();
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A WebSocket class that records every frame the client sends and every socket it opens. */
export function recordingWebSocket() {
  const sent = [];
  const received = [];
  const opened = [];
  class RecordingWebSocket extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols);
      opened.push(url);
      this.addEventListener('message', (event) => received.push(JSON.parse(event.data)));
    }

    send(data, ...rest) {
      sent.push(JSON.parse(data));
      return super.send(data, ...rest);
    }
  }
  return { WebSocket: RecordingWebSocket, sent, received, opened };
}

/** The next `type` event of `client` whose detail passes `match`; rejects after `ms`. */
export function nextEvent(client, type, match = () => true, ms = 8000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no ${type} event within ${ms} ms`));
    }, ms);
    const off = client.on(type, (detail) => {
      if (!match(detail)) return;
      clearTimeout(timer);
      off();
      resolve(detail);
    });
  });
}

/** Random source whose first draws are given, then Math.random: pins a client's first replica. */
export function firstDraws(...values) {
  return () => (values.length > 0 ? values.shift() : Math.random());
}

/** Index into `urls` as a random draw that picks it (the client picks urls[floor(r * n)]). */
export function pick(index, count = 3) {
  return (index + 0.5) / count;
}

export { sleep };

/** Resolves when `predicate()` holds, polling; fails after `ms`. */
export async function until(predicate, ms, what) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** it(), printing the cluster's last log lines when the test fails. */
export function testPrintingLogs(getCluster) {
  return (name, fn) => it(name, async () => {
    try {
      await fn();
    } catch (err) {
      console.error(getCluster()?.logs());
      throw err;
    }
  });
}
