// The client against three real vrouter replicas sharing one Redis: the protocol across
// replicas, coalescing on the wire, timeouts, and the close codes that must stop the client.
import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';

import { WebSocket } from 'ws';

import { VRouterClient } from '../src/index.js';
import {
  Cluster, FLEET, firstDraws, mintToken, mintTokenWithCli, nextEvent, pick, recordingWebSocket, skipReason, sleep,
  testPrintingLogs, until,
} from './harness.mjs';

describe('vrouter cluster (3 replicas, Redis store)', { skip: skipReason ?? false, timeout: 40_000 }, () => {
  let cluster;

  before(async () => {
    // --max-batch 4: the client must split its batches to the limit the welcome announces.
    cluster = await Cluster.start({ args: ['--max-batch', '4'] });
  });

  after(() => cluster?.stop());

  const it = testPrintingLogs(() => cluster);

  it('join, lookup, watch, moved and left across replicas', async () => {
    const alice = cluster.client('alice', { urls: [cluster.urls[0]], token: () => mintTokenWithCli('alice') });
    const bob = cluster.client('bob', { urls: [cluster.urls[1]] });
    const carol = cluster.client('carol', { urls: [cluster.urls[2]] });
    const welcome = await alice.connect();
    assert.equal(welcome.user, 'alice');
    assert.equal(welcome.limits.maxBatch, 4);
    await Promise.all([bob.connect(), carol.connect()]);

    const before = await bob.watch(['alice', 'nobody']);
    assert.equal(before.get('alice').server, null);
    const arrived = nextEvent(bob, 'moved', (m) => m.user === 'alice');
    const mine = await alice.join();
    assert.ok(FLEET.some((s) => s.id === mine.server.id), JSON.stringify(mine));
    assert.equal(mine.resumed, false);
    assert.deepEqual(alice.assignment, { server: mine.server, epoch: mine.epoch });
    const moved = await arrived;
    assert.deepEqual(moved, { user: 'alice', server: mine.server, epoch: mine.epoch, from: null });
    assert.deepEqual(bob.location('alice'), { user: 'alice', server: mine.server, epoch: mine.epoch });

    const found = await carol.lookup(['alice', 'nobody']);
    assert.deepEqual(found.get('alice'), { user: 'alice', server: mine.server, epoch: mine.epoch });
    assert.equal(found.get('nobody').server, null);

    await alice.report('no_media', { detail: 'js client test' });

    const gone = nextEvent(bob, 'left', (l) => l.user === 'alice');
    await alice.leave();
    assert.deepEqual(await gone, { user: 'alice', epoch: mine.epoch });
    assert.equal(alice.assignment, null);
  });

  it('migrate: the server of a joined user is drained', async () => {
    const dora = cluster.client('dora', { urls: [cluster.urls[0]] });
    const ed = cluster.client('ed', { urls: [cluster.urls[2]] });
    await Promise.all([dora.connect(), ed.connect()]);
    const mine = await dora.join();
    await ed.watch(['dora']);
    const migrated = nextEvent(dora, 'migrate');
    const moved = nextEvent(ed, 'moved', (m) => m.user === 'dora');
    // Drain through another replica than dora's: the drain is shared through the store.
    assert.equal(await cluster.replicas[1].post(`/v1/servers/${mine.server.id}/drain`), 200);
    try {
      const m = await migrated;
      assert.notEqual(m.server.id, mine.server.id);
      assert.ok(m.epoch > mine.epoch);
      assert.equal(m.reason, 'drain');
      assert.deepEqual(m.previous, { server: mine.server, epoch: mine.epoch });
      assert.deepEqual(dora.assignment, { server: m.server, epoch: m.epoch });
      const seen = await moved;
      assert.deepEqual(seen, { user: 'dora', server: m.server, epoch: m.epoch, from: mine.server.id });
    } finally {
      assert.equal(await cluster.replicas[1].post(`/v1/servers/${mine.server.id}/undrain`), 200);
    }
  });

  it('coalesces concurrent lookups on the wire and splits them to max_batch', async () => {
    const rec = recordingWebSocket();
    const fay = cluster.client('fay', { urls: [cluster.urls[1]], WebSocket: rec.WebSocket, lookupBatchMs: 5 });
    await fay.connect();
    const users = ['u1', 'u2', 'u3', 'u4', 'u5', 'u6'];
    // 30 lookups of overlapping sets of 6 distinct users in one go...
    const calls = Array.from({ length: 30 }, (_, i) => fay.lookup([users[i % 6], users[(i + 1) % 6], 'alice']));
    const answers = await Promise.all(calls);
    // ...are 7 distinct users: two `lookup` frames of at most 4 (the replica's max_batch).
    const frames = rec.sent.filter((f) => f.type === 'lookup');
    assert.equal(frames.length, 2, JSON.stringify(frames));
    assert.deepEqual(frames.map((f) => f.users.length).sort(), [3, 4]);
    assert.deepEqual(new Set(frames.flatMap((f) => f.users)), new Set([...users, 'alice']));
    answers.forEach((map, i) => {
      assert.deepEqual([...map.keys()], [users[i % 6], users[(i + 1) % 6], 'alice']);
      for (const loc of map.values()) assert.equal(loc.server, null);
    });
    // Later lookups are new frames: a result is never older than the call.
    await fay.lookup(['u1']);
    assert.equal(rec.sent.filter((f) => f.type === 'lookup').length, 3);
  });

  it('watch respects max_batch too, and the watch set is kept', async () => {
    const rec = recordingWebSocket();
    const gus = cluster.client('gus', { urls: [cluster.urls[2]], WebSocket: rec.WebSocket });
    await gus.connect();
    const many = Array.from({ length: 10 }, (_, i) => `w${i}`);
    const result = await gus.watch(many);
    assert.equal(result.size, 10);
    assert.deepEqual(rec.sent.filter((f) => f.type === 'watch').map((f) => f.users.length), [4, 4, 2]);
    await gus.unwatch(many.slice(0, 5));
    assert.deepEqual(gus.watching, many.slice(5));
  });

  it('heartbeat: the router answers the empty lookup that probes a quiet connection', async () => {
    const rec = recordingWebSocket();
    const kim = cluster.client('kim', { urls: [cluster.urls[0]], WebSocket: rec.WebSocket, heartbeatMs: 150, requestTimeoutMs: 2000 });
    await kim.connect();
    const probes = () => rec.sent.filter((f) => f.type === 'lookup');
    const answered = () => probes().filter((p) => rec.received.some((f) => f.id === p.id)).length;
    await until(() => answered() >= 3, 8000, 'three answered probes');
    assert.ok(probes().every((f) => f.users.length === 0));
    assert.equal(rec.opened.length, 1, 'never replaced');
    assert.equal(kim.state, 'open');
  });

  it('times out a request to a frozen replica and fails over to another', async () => {
    const frozen = cluster.replicas[2];
    const hal = cluster.client('hal', { random: firstDraws(pick(2)), requestTimeoutMs: 700 });
    await hal.connect();
    assert.equal(hal.url, frozen.url);
    const reopened = nextEvent(hal, 'state', (s) => s.state === 'open');
    frozen.signal('SIGSTOP');
    try {
      const started = Date.now();
      await assert.rejects(hal.lookup(['alice']), (err) => err.code === 'timeout' && err.retryable);
      const waited = Date.now() - started;
      assert.ok(waited >= 650 && waited < 2000, `timed out after ${waited} ms`);
      const open = await reopened;
      assert.notEqual(open.url, frozen.url);
      const found = await hal.lookup(['alice']);
      assert.equal(found.get('alice').server, null);
    } finally {
      frozen.signal('SIGCONT');
    }
  });

  it('close 4000: a session replaced by the same user elsewhere stops, without fighting back', async () => {
    const recA = recordingWebSocket();
    const first = cluster.client('ivy', { urls: [cluster.urls[0], cluster.urls[1]], random: firstDraws(0), WebSocket: recA.WebSocket });
    await first.connect();
    await first.join();
    const closed = nextEvent(first, 'state', (s) => s.state === 'closed');
    const second = cluster.client('ivy', { urls: [cluster.urls[1]] });
    await second.connect();
    const taken = await second.join();
    const state = await closed;
    assert.equal(state.error.code, 'session_replaced');
    assert.equal(state.code, 4000);
    const jay = cluster.client('jay', { urls: [cluster.urls[2]] });
    await jay.connect();
    assert.equal((await jay.lookup(['ivy'])).get('ivy').epoch, taken.epoch, 'one assignment, the newer session\'s');
    await sleep(600);
    assert.equal(recA.opened.length, 1, 'the replaced client did not reconnect');
    assert.equal(second.state, 'open');
  });

  it('a refused token stops the client: no retry loop', async () => {
    const rec = recordingWebSocket();
    const mallory = new VRouterClient({
      urls: cluster.urls,
      token: mintToken('mallory', 'room', 3600, 'not-the-secret'),
      WebSocket: rec.WebSocket,
      backoff: { baseMs: 10, maxMs: 50 },
    });
    cluster.clients.push(mallory);
    await assert.rejects(mallory.connect(), (err) => err.code === 'token_bad_signature' && err.fromRouter && !err.retryable);
    const expired = new VRouterClient({ urls: cluster.urls, token: mintToken('late', 'room', -3600), WebSocket });
    cluster.clients.push(expired);
    await assert.rejects(expired.connect(), { code: 'token_expired' });
    await sleep(300);
    assert.equal(rec.opened.length, 1);
    assert.equal(mallory.state, 'closed');
  });
});
