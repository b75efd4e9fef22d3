// The client against a scripted fake WebSocket: the test plays the router frame by frame.
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';

import { VRouterClient, VRouterError } from '../src/index.js';
import { SERVER_A, SERVER_B, fakeWebSocketClass, tick, until } from './fake-websocket.mjs';

const URLS = ['ws://r1/v1/client', 'ws://r2/v1/client', 'ws://r3/v1/client'];
const clients = [];

/** A client over fake sockets; `sockets` fills up as it connects. */
function setup(options = {}) {
  const { FakeWebSocket, sockets } = fakeWebSocketClass();
  const client = new VRouterClient({
    urls: URLS,
    token: 'tok',
    WebSocket: FakeWebSocket,
    requestTimeoutMs: 500,
    backoff: { baseMs: 20, maxMs: 200 },
    lookupBatchMs: 5,
    ...options,
  });
  const events = [];
  for (const type of ['state', 'assigned', 'moved', 'left', 'migrate', 'goaway', 'error']) {
    client.on(type, (detail) => events.push({ type, detail }));
  }
  clients.push(client);
  return { client, sockets, events, of: (type) => events.filter((e) => e.type === type).map((e) => e.detail) };
}

/** connect() and accept the first socket. */
async function connected(options) {
  const t = setup(options);
  const opened = t.client.connect();
  await until(() => t.sockets.length === 1, 500, 'first socket');
  t.sockets[0].accept(options?.welcome);
  await opened;
  return t;
}

/** join() answered with `server`/`epoch` on socket `ws`. */
async function joined(t, ws, server = SERVER_A, epoch = 7) {
  const p = t.client.join();
  await until(() => ws.frames('join').length + ws.frames('resume').length > 0, 500, 'join frame');
  const req = ws.lastFrame('join') ?? ws.lastFrame('resume');
  ws.answer(req, { type: 'assigned', server, epoch, resumed: false });
  return p;
}

afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
});

describe('connection', () => {
  it('offers vrouter.v1, says hello with the token first, and reports open', async () => {
    let calls = 0;
    const { client, sockets, of } = await connected({ token: async () => `tok-${++calls}` });
    assert.equal(sockets[0].protocol, 'vrouter.v1');
    assert.deepEqual(sockets[0].sent[0], { type: 'hello', id: 1, token: 'tok-1' });
    assert.equal(client.state, 'open');
    assert.deepEqual(of('state').map((s) => s.state), ['connecting', 'open']);
    assert.equal(client.session.user, 'alice');
    assert.ok(URLS.includes(client.url));
  });

  it('picks the replica at random with the injected random source', async () => {
    for (const [r, expected] of [[0, URLS[0]], [0.5, URLS[1]], [0.99, URLS[2]]]) {
      const { client, sockets } = setup({ random: () => r });
      client.connect().catch(() => {});
      await until(() => sockets.length === 1);
      assert.equal(sockets[0].url, expected);
    }
  });

  it('rejects requests before connect() and after close()', async () => {
    const { client } = setup();
    await assert.rejects(client.lookup(['bob']), { code: 'not_connected' });
    await client.close();
    await assert.rejects(client.join(), { code: 'client_closed' });
    await assert.rejects(client.connect(), { code: 'client_closed' });
  });
});

describe('reconnection', () => {
  it('backs off with full jitter, growing per failure, and avoids the replica that just failed', async () => {
    const { client, sockets, of } = setup({ random: () => 0.5, backoff: { baseMs: 40, maxMs: 100 } });
    client.connect().catch(() => {});
    const times = [];
    for (let i = 0; i < 5; i++) {
      await until(() => sockets.length === i + 1, 1000, `attempt ${i + 1}`);
      times.push(Date.now());
      sockets[i].serverFail();
    }
    const gaps = times.slice(1).map((t, i) => t - times[i]);
    assert.deepEqual(of('state').filter((s) => s.delayMs !== undefined).map((s) => s.delayMs), [20, 40, 50, 50, 50]);
    // random() = 0.5: delays are half of 40, 80, 100 (capped), 100 ms.
    const expected = [20, 40, 50, 50];
    gaps.forEach((gap, i) => assert.ok(gap >= expected[i] - 2 && gap < expected[i] + 40, `gap ${i}: ${gap} ms, expected ~${expected[i]}`));
    for (let i = 1; i < sockets.length; i++) assert.notEqual(sockets[i].url, sockets[i - 1].url);
    assert.equal(client.state, 'connecting', 'still trying: never opened');
  });

  it('starts the backoff over after a healthy connection', async () => {
    const { client, sockets, of } = await connected({ random: () => 0.999, backoff: { baseMs: 30, maxMs: 10_000, resetAfterMs: 50 } });
    // Two quick failures grow the attempt count...
    sockets[0].serverClose(1006);
    await until(() => sockets.length === 2);
    sockets[1].serverFail();
    await until(() => sockets.length === 3, 1000);
    sockets[2].accept();
    await until(() => client.state === 'open');
    await tick(70); // ...then a connection that lived past resetAfterMs resets it.
    sockets[2].serverClose(1006);
    await until(() => sockets.length === 4);
    const delays = of('state').filter((s) => s.state === 'reconnecting').map((s) => s.delayMs);
    assert.deepEqual(delays, [29, 59, 29]);
  });

  it('resumes with the last assignment, then watches again, and reports what changed meanwhile', async () => {
    const t = await connected();
    const { client, sockets } = t;
    await joined(t, sockets[0], SERVER_A, 7);
    const watching = client.watch(['bob', 'carol']);
    await until(() => sockets[0].frames('watch').length === 1);
    sockets[0].answer(sockets[0].lastFrame('watch'), {
      type: 'watch_result',
      results: [{ user: 'bob', server: SERVER_A, epoch: 5 }, { user: 'carol', server: SERVER_B, epoch: 6 }],
    });
    const initial = await watching;
    assert.equal(initial.get('bob').server.id, 'sfu-a');

    sockets[0].serverClose(1006); // network loss
    await until(() => sockets.length === 2, 1000);
    assert.notEqual(sockets[1].url, sockets[0].url);
    sockets[1].accept();
    await until(() => sockets[1].frames('watch').length === 1);
    const [hello, resume, watch] = sockets[1].sent;
    assert.equal(hello.type, 'hello');
    assert.deepEqual(resume, { type: 'resume', id: resume.id, server: 'sfu-a', epoch: 7 });
    assert.deepEqual(watch.users, ['bob', 'carol']);
    sockets[1].answer(resume, { type: 'assigned', server: SERVER_A, epoch: 7, resumed: true });
    // While disconnected bob moved and carol left: the new baseline says so.
    sockets[1].answer(watch, {
      type: 'watch_result',
      results: [{ user: 'bob', server: SERVER_B, epoch: 12 }, { user: 'carol', server: null, epoch: 0 }],
    });
    await until(() => t.of('left').length === 1);
    const assigned = t.of('assigned');
    assert.equal(assigned.length, 2);
    assert.deepEqual({ ...assigned[1], previous: undefined }, { server: SERVER_A, epoch: 7, resumed: true, previous: undefined, serverChanged: false });
    assert.deepEqual(t.of('moved'), [{ user: 'bob', server: SERVER_B, epoch: 12, from: 'sfu-a', resync: true }]);
    assert.deepEqual(t.of('left'), [{ user: 'carol', epoch: 6, resync: true }]);
    assert.deepEqual(t.of('state').map((s) => s.state), ['connecting', 'open', 'reconnecting', 'open']);
  });

  it('honours goaway: keeps serving until reconnect_after_ms, then moves to another replica', async () => {
    const t = await connected();
    const { client, sockets } = t;
    await joined(t, sockets[0], SERVER_A, 7);
    sockets[0].serverSend({ type: 'goaway', reason: 'shutdown', reconnect_after_ms: 80 });
    await tick(10);
    assert.equal(sockets.length, 1, 'no reconnect before reconnect_after_ms');
    const found = client.lookup(['bob']);
    await until(() => sockets[0].frames('lookup').length === 1);
    sockets[0].answer(sockets[0].lastFrame('lookup'), { type: 'lookup_result', results: [{ user: 'bob', server: null, epoch: 0 }] });
    assert.equal((await found).get('bob').server, null, 'the draining replica still answers');
    await until(() => sockets.length === 2, 500);
    assert.deepEqual(sockets[0].closedWith, { code: 1000, reason: '' });
    assert.notEqual(sockets[1].url, sockets[0].url);
    sockets[1].accept();
    await until(() => sockets[1].frames('resume').length === 1);
    assert.equal(t.of('goaway')[0].reconnectAfterMs, 80);
  });

  it('moves at once when the router closes with 1001 before reconnect_after_ms', async () => {
    const { sockets, of } = await connected();
    sockets[0].serverSend({ type: 'goaway', reason: 'shutdown', reconnect_after_ms: 5000 });
    sockets[0].serverClose(1001, 'shutdown');
    await until(() => sockets.length === 2, 200);
    assert.equal(of('state').at(-1).delayMs, 0);
  });

  it('stops for good on close 4000 (session replaced): no fight', async () => {
    const { client, sockets, of } = await connected();
    const pending = client.lookup(['bob']);
    await until(() => sockets[0].frames('lookup').length === 1);
    sockets[0].serverClose(4000, 'session_replaced');
    await assert.rejects(pending, { code: 'session_replaced', retryable: false });
    await tick(100);
    assert.equal(sockets.length, 1, 'did not reconnect');
    assert.equal(client.state, 'closed');
    assert.equal(of('error')[0].code, 'session_replaced');
  });

  it('stops on a refused hello and rejects connect() with the router code', async () => {
    const { client, sockets } = setup();
    const opened = client.connect();
    await until(() => sockets.length === 1);
    sockets[0].serverOpen();
    sockets[0].serverSend({ type: 'error', id: 1, code: 'token_expired', message: 'token expired' });
    sockets[0].serverClose(4001, 'authentication failed');
    await assert.rejects(opened, (err) => err instanceof VRouterError && err.code === 'token_expired' && !err.retryable);
    await tick(100);
    assert.equal(sockets.length, 1, 'did not hammer the router');
    assert.equal(client.state, 'closed');
  });

  it('backs off and reconnects after a hello refused with rate_limited', async () => {
    const { client, sockets, of } = setup();
    const opened = client.connect();
    await until(() => sockets.length === 1);
    sockets[0].serverOpen();
    sockets[0].serverSend({ type: 'error', id: 1, code: 'rate_limited', message: 'too many hellos' });
    await until(() => sockets.length === 2, 2000, 'second attempt');
    assert.ok(of('state').some((s) => s.reason === 'rate_limited' && s.delayMs >= 0));
    sockets[1].serverOpen();
    sockets[1].serverSend({ type: 'welcome', id: 1, replica: 'r', session: '1', user: 'alice', space: 's', limits: { max_message_bytes: 131072, max_batch: 1000, max_watches: 1000 } });
    await opened;
    assert.equal(client.state, 'open');
  });

  it('gives up on a socket that never gets its welcome', async () => {
    const { client, sockets } = setup({ connectTimeoutMs: 50 });
    client.connect().catch(() => {});
    await until(() => sockets.length === 1);
    sockets[0].serverOpen(); // upgraded, but the router never answers the hello
    await until(() => sockets.length === 2, 500, 'second attempt');
    assert.notEqual(sockets[1].url, sockets[0].url);
  });
});

describe('requests', () => {
  it('coalesces concurrent lookups into one frame, each user once', async () => {
    const { client, sockets } = await connected();
    const calls = [client.lookup(['bob', 'carol']), client.lookup(['carol', 'dave', 'bob']), client.lookup(['erin'])];
    await until(() => sockets[0].frames('lookup').length === 1);
    await tick(20);
    const frames = sockets[0].frames('lookup');
    assert.equal(frames.length, 1);
    assert.deepEqual(frames[0].users, ['bob', 'carol', 'dave', 'erin']);
    sockets[0].answer(frames[0], {
      type: 'lookup_result',
      results: frames[0].users.map((user, i) => ({ user, server: i % 2 ? SERVER_B : null, epoch: i % 2 ? 10 + i : 0 })),
    });
    const [a, b, c] = await Promise.all(calls);
    assert.deepEqual([...a.keys()], ['bob', 'carol']);
    assert.deepEqual([...b.keys()], ['carol', 'dave', 'bob']);
    assert.equal(b.get('carol').server.id, 'sfu-b');
    assert.equal(b.get('dave').server, null);
    assert.deepEqual(c.get('erin'), { user: 'erin', server: SERVER_B, epoch: 13 });
  });

  it("splits a batch to the replica's max_batch and answers each caller when its part is in", async () => {
    const { client, sockets } = await connected({ welcome: { limits: { max_batch: 2 } } });
    const one = client.lookup(['a', 'b']);
    const two = client.lookup(['c', 'd', 'e']);
    await until(() => sockets[0].frames('lookup').length === 3);
    const frames = sockets[0].frames('lookup');
    assert.deepEqual(frames.map((f) => f.users), [['a', 'b'], ['c', 'd'], ['e']]);
    const answer = (f) => sockets[0].answer(f, { type: 'lookup_result', results: f.users.map((user) => ({ user, server: null, epoch: 0 })) });
    answer(frames[0]);
    assert.deepEqual([...(await one).keys()], ['a', 'b'], 'resolved without waiting for the other frames');
    answer(frames[1]);
    answer(frames[2]);
    assert.equal((await two).size, 3);
  });

  it('refuses an invalid id locally without spoiling the batch', async () => {
    const { client, sockets } = await connected();
    const bad = client.lookup(['ok', 'not\nok']);
    const good = client.lookup(['bob']);
    await assert.rejects(bad, { code: 'invalid_message' });
    await until(() => sockets[0].frames('lookup').length === 1);
    assert.deepEqual(sockets[0].lastFrame('lookup').users, ['bob']);
    sockets[0].answer(sockets[0].lastFrame('lookup'), { type: 'lookup_result', results: [{ user: 'bob', server: null, epoch: 0 }] });
    await good;
  });

  it('times out a request and replaces a connection that went silent', async () => {
    const { client, sockets } = await connected({ requestTimeoutMs: 100 });
    const started = Date.now();
    await assert.rejects(client.lookup(['bob']), (err) => err.code === 'timeout' && err.retryable && err.request === 'lookup');
    const waited = Date.now() - started;
    assert.ok(waited >= 95 && waited < 400, `timed out after ${waited} ms`);
    await until(() => sockets.length === 2, 500, 'a new connection');
    assert.notEqual(sockets[1].url, sockets[0].url);
  });

  it('probes a quiet connection and replaces it when the probe goes unanswered', async () => {
    const { client, sockets } = await connected({ heartbeatMs: 60, requestTimeoutMs: 80 });
    await until(() => sockets[0].frames('lookup').length === 1, 500, 'heartbeat probe');
    const probe = sockets[0].lastFrame('lookup');
    assert.deepEqual(probe.users, []);
    sockets[0].answer(probe, { type: 'lookup_result', results: [] }); // alive: stays
    await until(() => sockets[0].frames('lookup').length === 2, 500, 'second probe');
    await until(() => sockets.length === 2, 500, 'replaced after an unanswered probe');
    assert.equal(client.state, 'reconnecting');
  });

  it('keeps a connection that answers other things while one request is slow', async () => {
    const { client, sockets } = await connected({ requestTimeoutMs: 100 });
    const slow = client.lookup(['bob']);
    await until(() => sockets[0].frames('lookup').length === 1);
    await tick(30);
    sockets[0].serverSend({ type: 'moved', user: 'nobody', server: SERVER_A, epoch: 1, from: null });
    await assert.rejects(slow, { code: 'timeout' });
    await tick(30);
    assert.equal(sockets.length, 1);
  });

  it('sends idempotent requests again after a reconnect and fails the others', async () => {
    const t = await connected();
    const { client, sockets } = t;
    await joined(t, sockets[0]);
    const found = client.lookup(['bob']);
    const reported = client.report('ice_failed', { detail: 'no candidate pair' });
    await until(() => sockets[0].frames('lookup').length === 1 && sockets[0].frames('report').length === 1);
    assert.deepEqual(sockets[0].lastFrame('report'), { type: 'report', id: sockets[0].lastFrame('report').id, server: 'sfu-a', reason: 'ice_failed', detail: 'no candidate pair' });
    sockets[0].serverClose(1006);
    await assert.rejects(reported, { code: 'connection_lost' });
    await until(() => sockets.length === 2, 1000);
    sockets[1].accept();
    await until(() => sockets[1].frames('lookup').length === 1);
    const [, resume, lookup] = sockets[1].sent;
    assert.equal(resume.type, 'resume', 'restore goes before queued requests');
    sockets[1].answer(lookup, { type: 'lookup_result', results: [{ user: 'bob', server: SERVER_B, epoch: 3 }] });
    assert.equal((await found).get('bob').epoch, 3);
  });

  it('maps error frames to VRouterError and retries a retryable join', async () => {
    const { client, sockets } = await connected();
    const joining = client.join();
    await until(() => sockets[0].frames('join').length === 1);
    sockets[0].answer(sockets[0].lastFrame('join'), { type: 'error', code: 'unavailable', message: 'store down' });
    await until(() => sockets[0].frames('join').length === 2, 500, 'join retried');
    sockets[0].answer(sockets[0].lastFrame('join'), { type: 'assigned', server: SERVER_B, epoch: 3, resumed: false });
    assert.deepEqual(await joining, { server: SERVER_B, epoch: 3, resumed: false, previous: null, serverChanged: true });

    const watching = client.watch(['x']);
    await until(() => sockets[0].frames('watch').length === 1);
    sockets[0].answer(sockets[0].lastFrame('watch'), { type: 'error', code: 'too_many_watches', message: 'too many' });
    await assert.rejects(watching, (err) => err.code === 'too_many_watches' && err.fromRouter && !err.retryable);
    assert.deepEqual(client.watching, [], 'a refused watch is not kept');
  });

  it('moves to another replica when join meets shutting_down', async () => {
    const { client, sockets } = await connected();
    const joining = client.join();
    await until(() => sockets[0].frames('join').length === 1);
    sockets[0].answer(sockets[0].lastFrame('join'), { type: 'error', code: 'shutting_down', message: 'draining' });
    await until(() => sockets.length === 2, 200);
    sockets[1].accept();
    await until(() => sockets[1].frames('join').length === 1);
    sockets[1].answer(sockets[1].lastFrame('join'), { type: 'assigned', server: SERVER_A, epoch: 4, resumed: false });
    assert.equal((await joining).epoch, 4);
  });

  it('keeps at most maxInFlight requests unanswered on a connection', async () => {
    const { client, sockets } = await connected({ maxInFlight: 2 });
    const calls = ['a', 'b', 'c', 'd'].map((u) => client.watch([u]));
    await until(() => sockets[0].frames('watch').length === 2);
    await tick(10);
    assert.equal(sockets[0].frames('watch').length, 2);
    const answer = (f) => sockets[0].answer(f, { type: 'watch_result', results: [{ user: f.users[0], server: null, epoch: 0 }] });
    answer(sockets[0].frames('watch')[0]);
    await until(() => sockets[0].frames('watch').length === 3);
    for (const f of sockets[0].frames('watch').slice(1)) answer(f);
    await until(() => sockets[0].frames('watch').length === 4);
    answer(sockets[0].frames('watch')[3]);
    await Promise.all(calls);
  });
});

describe('pushes and assignment', () => {
  it('emits moved/left for watched users only, by epoch', async () => {
    const { client, sockets, of } = await connected();
    const watching = client.watch(['bob']);
    await until(() => sockets[0].frames('watch').length === 1);
    sockets[0].answer(sockets[0].lastFrame('watch'), { type: 'watch_result', results: [{ user: 'bob', server: null, epoch: 0 }] });
    await watching;
    const push = (f) => sockets[0].serverSend(f);
    push({ type: 'moved', user: 'bob', server: SERVER_A, epoch: 5, from: null });
    push({ type: 'moved', user: 'bob', server: SERVER_A, epoch: 5, from: null }); // duplicate
    push({ type: 'moved', user: 'zed', server: SERVER_A, epoch: 6, from: null }); // not watched
    push({ type: 'left', user: 'bob', epoch: 4 }); // stale
    push({ type: 'left', user: 'bob', epoch: 5 });
    push({ type: 'teleported', user: 'bob' }); // unknown push: ignored
    assert.deepEqual(of('moved'), [{ user: 'bob', server: SERVER_A, epoch: 5, from: null }]);
    assert.deepEqual(of('left'), [{ user: 'bob', epoch: 5 }]);
    assert.deepEqual(client.location('bob'), { user: 'bob', server: null, epoch: 0 });
    await client.unwatch(['bob']).catch(() => {});
    push({ type: 'moved', user: 'bob', server: SERVER_B, epoch: 9, from: null });
    assert.equal(of('moved').length, 1, 'nothing after unwatch');
  });

  it('follows migrate (newer epochs only) and resumes with it', async () => {
    const t = await connected();
    const { client, sockets } = t;
    await joined(t, sockets[0], SERVER_A, 7);
    sockets[0].serverSend({ type: 'migrate', server: SERVER_B, epoch: 9, reason: 'drain' });
    sockets[0].serverSend({ type: 'migrate', server: SERVER_A, epoch: 8, reason: 'drain' }); // stale
    assert.deepEqual(t.of('migrate').map((m) => [m.server.id, m.epoch, m.reason, m.previous.server.id]), [['sfu-b', 9, 'drain', 'sfu-a']]);
    assert.deepEqual(client.assignment, { server: SERVER_B, epoch: 9 });
    sockets[0].serverClose(1006);
    await until(() => sockets.length === 2, 1000);
    sockets[1].accept();
    await until(() => sockets[1].frames('resume').length === 1);
    assert.deepEqual(sockets[1].lastFrame('resume'), { type: 'resume', id: 2, server: 'sfu-b', epoch: 9 });
  });

  it('requests made while disconnected wait for the next connection, after the resume', async () => {
    const t = await connected();
    const { client, sockets } = t;
    await joined(t, sockets[0], SERVER_A, 7);
    sockets[0].serverClose(1006);
    await until(() => client.state === 'reconnecting');
    const reported = client.report('no_media');
    const found = client.lookup(['bob']);
    await until(() => sockets.length === 2, 1000);
    sockets[1].accept();
    await until(() => sockets[1].sent.length === 4);
    assert.deepEqual(sockets[1].sent.map((f) => f.type), ['hello', 'resume', 'report', 'lookup']);
    const [, resume, report, lookup] = sockets[1].sent;
    sockets[1].answer(resume, { type: 'assigned', server: SERVER_A, epoch: 7, resumed: true });
    sockets[1].answer(report, { type: 'ack' });
    sockets[1].answer(lookup, { type: 'lookup_result', results: [{ user: 'bob', server: null, epoch: 0 }] });
    await Promise.all([reported, found]);
  });

  it('retries a token function that fails, reporting it as an error event', async () => {
    let calls = 0;
    const { client, sockets, of } = setup({
      token: () => {
        if (++calls === 1) throw new Error('token service down');
        return 'tok';
      },
    });
    const opened = client.connect();
    await until(() => sockets.length === 1, 1000);
    assert.equal(of('error')[0].code, 'token_error');
    sockets[0].accept();
    await opened;
    assert.equal(sockets[0].sent[0].token, 'tok');
  });

  it('leave ends the assignment and stops resuming it', async () => {
    const t = await connected();
    const { client, sockets } = t;
    await joined(t, sockets[0], SERVER_A, 7);
    const leaving = client.leave();
    await until(() => sockets[0].frames('leave').length === 1);
    sockets[0].answer(sockets[0].lastFrame('leave'), { type: 'ack' });
    await leaving;
    assert.equal(client.assignment, null);
    sockets[0].serverClose(1006);
    await until(() => sockets.length === 2, 1000);
    sockets[1].accept();
    await tick(20);
    assert.deepEqual(sockets[1].sent.map((f) => f.type), ['hello']);
  });
});
