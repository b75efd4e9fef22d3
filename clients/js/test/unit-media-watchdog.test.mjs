// The media watchdog against a fake RTCPeerConnection whose getStats() returns stats shaped like
// Chromium's (inbound-rtp, remote-outbound-rtp linked by localId, transport), on a fake clock.
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';

import { MediaWatchdog, VRouterClient } from '../src/index.js';
import { SERVER_A, fakeWebSocketClass, until } from './fake-websocket.mjs';

/** Lets every pending promise callback run (getStats, report, their events). */
const settle = () => new Promise((resolve) => setImmediate(resolve));

/** A clock and interval timers the test moves by hand. */
function fakeClock() {
  let t = 0;
  let nextId = 1;
  const timers = new Map();
  return {
    now: () => t,
    setInterval: (fn, ms) => {
      const id = nextId++;
      timers.set(id, { fn, ms, due: t + ms });
      return id;
    },
    clearInterval: (id) => timers.delete(id),
    get timerCount() {
      return timers.size;
    },
    /** Moves time forward by `ms`, firing due timers in order and settling after each. */
    async advance(ms) {
      await settle(); // what is already due at the current time first (a watchdog's first look)
      const end = t + ms;
      for (;;) {
        let next = null;
        for (const timer of timers.values()) if (timer.due <= end && (!next || timer.due < next.due)) next = timer;
        if (!next) break;
        t = next.due;
        next.due += next.ms;
        next.fn();
        await settle();
      }
      t = end;
      await settle();
    },
  };
}

/**
 * A fake peer connection. `streams` are inbound streams whose counters move by `rates` at every
 * getStats() call: `recv` packets received, `sent` packets the server says it sent (its RTCP
 * sender reports, in remote-outbound-rtp; `remote: false` means none arrived yet).
 */
class FakePeerConnection {
  connectionState = 'connected';
  iceConnectionState = 'connected';
  signalingState = 'stable';
  dtlsState = 'connected';
  outbound = false; // a publisher: outbound-rtp only
  rejectStats = false;
  getStatsCalls = 0;
  listeners = new Map();
  streams = [];

  constructor({ kinds = ['video'], events = true } = {}) {
    kinds.forEach((kind, i) => {
      const ssrc = 1000 + i;
      this.streams.push({ kind, ssrc, id: `IT01${kind[0].toUpperCase()}${ssrc}`, recv: 0, sent: 0, rates: { recv: 90, sent: 90 }, remote: true, link: 'localId' });
    });
    if (!events) {
      this.addEventListener = undefined;
      this.removeEventListener = undefined;
    }
  }

  /** Sets the per-poll rates of every stream (or of one kind). */
  rates(recv, sent, kind) {
    for (const s of this.streams) if (!kind || s.kind === kind) s.rates = { recv, sent };
  }

  getStats() {
    this.getStatsCalls++;
    if (this.rejectStats === 'throw') throw new Error('getStats exploded');
    if (this.rejectStats) return Promise.reject(new DOMException('closed', 'InvalidStateError'));
    const report = new Map();
    const add = (stat) => report.set(stat.id, { timestamp: this.getStatsCalls * 1000, ...stat });
    add({ id: 'T01', type: 'transport', dtlsState: this.dtlsState, iceState: this.iceConnectionState === 'failed' ? 'failed' : 'connected' });
    for (const s of this.streams) {
      s.recv += s.rates.recv;
      s.sent += s.rates.sent;
      if (this.outbound) {
        add({ id: `OT01${s.ssrc}`, type: 'outbound-rtp', kind: s.kind, ssrc: s.ssrc, packetsSent: s.sent });
        add({ id: `RI${s.ssrc}`, type: 'remote-inbound-rtp', kind: s.kind, ssrc: s.ssrc, localId: `OT01${s.ssrc}`, packetsLost: 0 });
        continue;
      }
      add({ id: s.id, type: 'inbound-rtp', kind: s.kind, ssrc: s.ssrc, packetsReceived: s.recv, packetsLost: 0, jitter: 0.002, transportId: 'T01' });
      if (s.remote) {
        const remote = { id: `ROA${s.ssrc}`, type: 'remote-outbound-rtp', kind: s.kind, ssrc: s.ssrc, packetsSent: s.sent, reportsSent: this.getStatsCalls };
        if (s.link === 'localId') remote.localId = s.id;
        add(remote);
      }
    }
    return Promise.resolve(report);
  }

  addEventListener(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(fn);
  }

  removeEventListener(type, fn) {
    this.listeners.get(type)?.delete(fn);
  }

  listenerCount() {
    return [...this.listeners.values()].reduce((n, set) => n + set.size, 0);
  }

  /** Changes states and fires the events a browser would. */
  set({ ice, connection }) {
    if (ice !== undefined && ice !== this.iceConnectionState) {
      this.iceConnectionState = ice;
      for (const fn of this.listeners.get('iceconnectionstatechange') ?? []) fn({});
    }
    if (connection !== undefined && connection !== this.connectionState) {
      this.connectionState = connection;
      for (const fn of this.listeners.get('connectionstatechange') ?? []) fn({});
    }
  }
}

const running = [];
afterEach(() => {
  for (const dog of running.splice(0)) dog.stop();
});

/** A standalone watchdog on a fake clock; `reports` records the report() calls. */
function watch(pc, options = {}) {
  const clock = options.clock ?? fakeClock();
  const reports = [];
  const events = [];
  const dog = new MediaWatchdog(pc, {
    server: 'sfu-a',
    report: (reason, o) => {
      reports.push({ reason, ...o, at: clock.now() });
      return options.reportResult ? options.reportResult() : Promise.resolve();
    },
    now: clock.now,
    setInterval: clock.setInterval,
    clearInterval: clock.clearInterval,
    ...options,
  });
  for (const type of ['media', 'recovered']) dog.on(type, (e) => events.push({ type, at: clock.now(), ...e }));
  running.push(dog);
  return { dog, clock, reports, events, media: () => events.filter((e) => e.type === 'media') };
}

describe('no_media', () => {
  it('reports nothing while media flows', async () => {
    const pc = new FakePeerConnection({ kinds: ['audio', 'video'] });
    const { clock, reports, events } = watch(pc);
    await clock.advance(30_000);
    assert.equal(pc.getStatsCalls, 31);
    assert.deepEqual(events, []);
    assert.deepEqual(reports, []);
  });

  it('reports a frozen inbound stream while the server keeps sending, once, after noMediaAfterMs', async () => {
    const pc = new FakePeerConnection();
    const { clock, reports, media } = watch(pc, { connection: 'subscribe:bob' });
    await clock.advance(4000); // polls at 0..4000 see it flow
    pc.rates(0, 90); // the black hole: sender reports climb, nothing arrives
    await clock.advance(2999);
    assert.deepEqual(reports, [], 'not before 3 s frozen');
    await clock.advance(1);
    assert.deepEqual(reports, [{ reason: 'no_media', server: 'sfu-a', detail: 'inbound video frozen 3.0s while server sent 180 packets', at: 7000 }]);
    assert.deepEqual(media(), [{
      type: 'media', at: 7000, server: 'sfu-a', reason: 'no_media', reported: true,
      detail: 'inbound video frozen 3.0s while server sent 180 packets', connection: 'subscribe:bob',
    }]);
    await clock.advance(60_000);
    assert.equal(reports.length, 1, 'one report per freeze');
    assert.equal(media().length, 1);
  });

  it('does not report when the server stopped sending too (peer muted or gone)', async () => {
    const pc = new FakePeerConnection({ kinds: ['audio', 'video'] });
    const { clock, events } = watch(pc);
    await clock.advance(3000);
    pc.rates(0, 0);
    await clock.advance(30_000);
    assert.deepEqual(events, []);
  });

  it('does not take the sender report carrying the last packets for a black hole', async () => {
    const pc = new FakePeerConnection();
    const { clock, events } = watch(pc);
    await clock.advance(3000);
    // The peer stops; its last packets arrived, the sender report counting them comes a poll later.
    pc.rates(0, 0);
    await clock.advance(1000);
    pc.rates(0, 60);
    await clock.advance(1000);
    pc.rates(0, 0);
    await clock.advance(30_000);
    assert.deepEqual(events, []);
  });

  it('does not report without sender reports (cannot tell a silent peer), even frozen from the start', async () => {
    const pc = new FakePeerConnection();
    pc.streams[0].remote = false;
    pc.rates(0, 90);
    const { clock, events } = watch(pc);
    await clock.advance(30_000);
    assert.deepEqual(events, []);
    // Once sender reports arrive, the freeze is evidence.
    pc.streams[0].remote = true;
    await clock.advance(3000);
    assert.deepEqual(events.map((e) => e.reason), ['no_media']);
  });

  it('reports a stream frozen since the watch started, once the server is seen sending', async () => {
    const pc = new FakePeerConnection();
    pc.rates(0, 50);
    const { clock, reports } = watch(pc);
    await clock.advance(2999);
    assert.equal(reports.length, 0);
    await clock.advance(1);
    assert.deepEqual(reports.map((r) => [r.reason, r.at, r.detail]), [['no_media', 3000, 'inbound video frozen 3.0s while server sent 100 packets']]);
  });

  it('never reports no_media from a publisher connection (outbound only)', async () => {
    const pc = new FakePeerConnection({ kinds: ['audio', 'video'] });
    pc.outbound = true;
    pc.rates(0, 0);
    const { clock, events } = watch(pc);
    await clock.advance(30_000);
    assert.deepEqual(events, []);
  });

  it('matches the sender report by SSRC without localId, and names the other frozen streams', async () => {
    const pc = new FakePeerConnection({ kinds: ['audio', 'video'] });
    for (const s of pc.streams) s.link = 'ssrc';
    const { clock, reports } = watch(pc);
    await clock.advance(2000);
    pc.rates(0, 50, 'audio');
    pc.rates(0, 90, 'video');
    await clock.advance(3000);
    assert.deepEqual(reports.map((r) => r.detail), ['inbound audio frozen 3.0s while server sent 100 packets (+1 more stream)']);
  });

  it('needs the stream to flow for recoverAfterMs before the next no_media', async () => {
    const pc = new FakePeerConnection();
    const { clock, reports, events } = watch(pc, { minReportIntervalMs: 0 });
    await clock.advance(1000);
    pc.rates(0, 90);
    await clock.advance(3000); // report at 4000
    assert.equal(reports.length, 1);
    pc.rates(90, 90);
    await clock.advance(1000); // one poll of flow: not recovered
    pc.rates(0, 90);
    await clock.advance(20_000);
    assert.equal(reports.length, 1, 'a blip of media is no recovery');
    assert.deepEqual(events.filter((e) => e.type === 'recovered'), []);
    pc.rates(90, 90);
    await clock.advance(2999);
    assert.equal(events.filter((e) => e.type === 'recovered').length, 0);
    await clock.advance(1000);
    const recovered = events.filter((e) => e.type === 'recovered');
    assert.deepEqual(recovered, [{ type: 'recovered', at: 28_000, server: 'sfu-a', reason: 'no_media', detail: 'inbound video flowing again for 2.0s' }]);
    pc.rates(0, 90);
    await clock.advance(3000);
    assert.deepEqual(reports.map((r) => r.at), [4000, 31_000]);
  });

  it('after recovery, a second freeze is reported once the interval cap allows', async () => {
    const pc = new FakePeerConnection();
    const { clock, reports, media } = watch(pc);
    await clock.advance(4000);
    pc.rates(0, 90);
    await clock.advance(3000); // report at 7000
    pc.rates(90, 90);
    await clock.advance(3000); // flowing at 8000, 9000, 10000: recovered
    pc.rates(0, 90);
    await clock.advance(3000); // detected at 13000, within 10 s of the first report
    assert.deepEqual(reports.map((r) => r.at), [7000]);
    assert.deepEqual(media().map((e) => [e.at, e.reported, e.skipped]), [[7000, true, undefined], [13000, false, 'interval']]);
    await clock.advance(3999);
    assert.deepEqual(reports.map((r) => r.at), [7000], 'not before the cap expires');
    await clock.advance(1);
    assert.deepEqual(reports.map((r) => r.at), [7000, 17_000], 'still frozen when the cap expires: reported');
    assert.equal(reports[1].detail, 'inbound video frozen 7.0s while server sent 540 packets');
    assert.deepEqual(media().map((e) => [e.at, e.reported, e.skipped]).slice(2), [[17_000, true, undefined]]);
    await clock.advance(60_000);
    assert.equal(reports.length, 2);
  });

  it('does not send a capped detection later if the stream stopped being evidence', async () => {
    const pc = new FakePeerConnection();
    const { clock, reports, media } = watch(pc);
    await clock.advance(1000);
    pc.rates(0, 90);
    await clock.advance(3000); // report at 4000
    pc.rates(90, 90);
    await clock.advance(3000); // recovered at 7000
    pc.rates(0, 90);
    await clock.advance(3000); // detected at 10000: capped
    pc.rates(0, 0); // the peer stopped: no evidence any more
    await clock.advance(30_000);
    assert.deepEqual(reports.map((r) => r.at), [4000]);
    assert.deepEqual(media().map((e) => e.skipped), [undefined, 'interval']);
  });

  it('sends at most maxReportsPerServer reports per server', async () => {
    const pc = new FakePeerConnection();
    const { clock, reports, media } = watch(pc, { minReportIntervalMs: 0, maxReportsPerServer: 2 });
    await clock.advance(1000);
    for (let i = 0; i < 3; i++) {
      pc.rates(0, 90);
      await clock.advance(3000);
      pc.rates(90, 90);
      await clock.advance(3000);
    }
    assert.equal(reports.length, 2);
    assert.deepEqual(media().map((e) => [e.reported, e.skipped]), [[true, undefined], [true, undefined], [false, 'max_reports']]);
  });

  it('emits reported: false with the error when the report fails', async () => {
    const pc = new FakePeerConnection();
    const failure = Object.assign(new Error('forbidden'), { code: 'forbidden' });
    const { clock, media } = watch(pc, { reportResult: () => Promise.reject(failure) });
    pc.rates(0, 90);
    await clock.advance(3000);
    assert.equal(media().length, 1);
    assert.equal(media()[0].reported, false);
    assert.equal(media()[0].error, failure);
  });

  it('keeps the report detail within 256 bytes', async () => {
    const pc = new FakePeerConnection({ kinds: ['v'.repeat(300)] });
    const { clock, reports } = watch(pc);
    pc.rates(0, 90);
    await clock.advance(3000);
    assert.equal(reports.length, 1);
    assert.ok(new TextEncoder().encode(reports[0].detail).length <= 256);
  });
});

describe('ice_failed and dtls_failed', () => {
  it('reports ice_failed when iceConnectionState becomes failed (event), once per failure', async () => {
    const pc = new FakePeerConnection();
    const { clock, reports, media } = watch(pc, { minReportIntervalMs: 0 });
    await clock.advance(2000);
    pc.set({ ice: 'disconnected' });
    pc.set({ ice: 'failed', connection: 'failed' });
    await settle();
    assert.deepEqual(reports.map((r) => [r.reason, r.at, r.detail]), [['ice_failed', 2000, 'iceConnectionState failed (connection connected, ice failed)']]);
    await clock.advance(10_000);
    assert.equal(reports.length, 1, 'one report while it stays failed, and no dtls_failed');
    // An ICE restart that fails again is a new failure.
    pc.set({ ice: 'checking', connection: 'connecting' });
    pc.set({ ice: 'failed', connection: 'failed' });
    await settle();
    assert.deepEqual(reports.map((r) => r.reason), ['ice_failed', 'ice_failed']);
    assert.deepEqual(media().map((e) => e.reported), [true, true]);
  });

  it('finds ice_failed by polling when the object has no events', async () => {
    const pc = new FakePeerConnection({ events: false });
    const { clock, reports } = watch(pc);
    await clock.advance(1500);
    pc.iceConnectionState = 'failed';
    pc.connectionState = 'failed';
    await clock.advance(499);
    assert.equal(reports.length, 0);
    await clock.advance(1);
    assert.deepEqual(reports.map((r) => [r.reason, r.at]), [['ice_failed', 2000]]);
  });

  it('reports dtls_failed from the transport stats', async () => {
    const pc = new FakePeerConnection();
    const { clock, reports } = watch(pc);
    await clock.advance(2000);
    pc.dtlsState = 'failed';
    pc.connectionState = 'failed'; // no event: the poll finds it
    await clock.advance(1000);
    assert.deepEqual(reports.map((r) => [r.reason, r.at, r.detail]), [['dtls_failed', 3000, 'transport dtlsState failed (connection failed, ice connected)']]);
    await clock.advance(10_000);
    assert.equal(reports.length, 1);
  });

  it('reports dtls_failed when the connection failed with ICE connected (event)', async () => {
    const pc = new FakePeerConnection();
    const { clock, reports } = watch(pc);
    await clock.advance(1000);
    pc.set({ connection: 'failed' });
    await settle();
    assert.deepEqual(reports.map((r) => [r.reason, r.detail]), [['dtls_failed', 'connectionState failed with ICE connected (connection failed, ice connected)']]);
  });

  it('does not blame the server for no_media once ICE failed', async () => {
    const pc = new FakePeerConnection();
    const { clock, reports } = watch(pc, { minReportIntervalMs: 0 });
    await clock.advance(1000);
    pc.rates(0, 90);
    pc.set({ ice: 'failed', connection: 'failed' });
    await clock.advance(10_000);
    assert.deepEqual(reports.map((r) => r.reason), ['ice_failed']);
  });
});

describe('robustness and lifecycle', () => {
  it('skips a poll whose getStats() rejects or throws, and carries on', async () => {
    const pc = new FakePeerConnection();
    const { clock, reports } = watch(pc);
    await clock.advance(1000);
    pc.rejectStats = true;
    await clock.advance(5000);
    pc.rejectStats = 'throw';
    await clock.advance(5000);
    assert.equal(reports.length, 0);
    pc.rejectStats = false;
    pc.rates(0, 90);
    await clock.advance(3000);
    assert.deepEqual(reports.map((r) => r.reason), ['no_media']);
  });

  it('survives a listener that throws', async () => {
    const pc = new FakePeerConnection();
    const { dog, clock, media } = watch(pc);
    // The emitter re-throws a listener's exception from a microtask (like DOM listeners): catch
    // those here instead of letting them reach the test runner.
    const uncaught = [];
    const queueMicrotask = globalThis.queueMicrotask;
    globalThis.queueMicrotask = (fn) => queueMicrotask(() => {
      try {
        fn();
      } catch (err) {
        uncaught.push(err);
      }
    });
    try {
      dog.on('media', () => {
        throw new Error('listener bug');
      });
      pc.rates(0, 90);
      await clock.advance(3000);
      pc.set({ ice: 'failed', connection: 'failed' });
      await clock.advance(3000);
    } finally {
      globalThis.queueMicrotask = queueMicrotask;
    }
    assert.deepEqual(media().map((e) => e.reason), ['no_media', 'ice_failed']);
    assert.deepEqual(uncaught.map((e) => e.message), ['listener bug', 'listener bug'], 'rethrown asynchronously, like DOM listeners');
  });

  it('takes a server function that throws for an unknown server', async () => {
    const pc = new FakePeerConnection();
    const { clock, reports, media } = watch(pc, {
      server: () => {
        throw new Error('no idea');
      },
    });
    pc.rates(0, 90);
    await clock.advance(10_000);
    assert.deepEqual(reports, []);
    assert.deepEqual(media().map((e) => [e.server, e.reported, e.skipped]), [[null, false, 'no_server']]);
  });

  it('stop() ends polling and listening', async () => {
    const pc = new FakePeerConnection();
    const { dog, clock, reports } = watch(pc);
    await clock.advance(2000);
    const calls = pc.getStatsCalls;
    assert.equal(pc.listenerCount(), 2);
    dog.stop();
    dog.stop();
    assert.equal(dog.active, false);
    assert.equal(clock.timerCount, 0);
    assert.equal(pc.listenerCount(), 0);
    pc.rates(0, 90);
    pc.set({ ice: 'failed' });
    await clock.advance(10_000);
    assert.equal(pc.getStatsCalls, calls);
    assert.deepEqual(reports, []);
  });

  it('stops by itself when the connection is closed', async () => {
    const pc = new FakePeerConnection();
    const { dog, clock, events } = watch(pc);
    const stopped = [];
    dog.on('stopped', () => stopped.push(clock.now()));
    await clock.advance(1000);
    // pc.close() fires no event: the next poll notices.
    pc.connectionState = 'closed';
    pc.signalingState = 'closed';
    await clock.advance(1000);
    assert.equal(dog.active, false);
    assert.deepEqual(stopped, [2000]);
    assert.equal(clock.timerCount, 0);
    assert.deepEqual(events, []);
  });

  it('reports about the current server and drops evidence gathered on a previous one', async () => {
    const pc = new FakePeerConnection();
    let server = 'sfu-a';
    const { clock, reports } = watch(pc, { server: () => server, minReportIntervalMs: 0 });
    await clock.advance(1000);
    pc.rates(0, 90);
    await clock.advance(3000);
    assert.deepEqual(reports.map((r) => [r.server, r.at]), [['sfu-a', 4000]]);
    // The watched user moved; the subscription follows to sfu-b.
    pc.rates(90, 90);
    await clock.advance(2000);
    server = 'sfu-b';
    pc.rates(0, 90);
    await clock.advance(2000);
    server = 'sfu-c'; // moved again mid-freeze: sfu-c is not blamed for what was seen on sfu-b
    await clock.advance(3999); // 9000 first look on sfu-c, frozen from there
    assert.equal(reports.length, 1);
    await clock.advance(1);
    assert.deepEqual(reports.map((r) => [r.server, r.at]), [['sfu-a', 4000], ['sfu-c', 12_000]]);
  });

  it('reports nothing while the server is unknown, and says so in the event', async () => {
    const pc = new FakePeerConnection();
    const { clock, reports, media } = watch(pc, { server: () => null });
    pc.rates(0, 90);
    await clock.advance(10_000);
    assert.deepEqual(reports, []);
    assert.deepEqual(media().map((e) => [e.server, e.reported, e.skipped]), [[null, false, 'no_server']]);
  });

  it('validates its arguments', () => {
    assert.throws(() => new MediaWatchdog({}, { report() {} }), TypeError);
    assert.throws(() => new MediaWatchdog(new FakePeerConnection(), {}), TypeError);
    assert.throws(() => new MediaWatchdog(new FakePeerConnection(), { report() {}, intervalMs: 0 }), TypeError);
    assert.throws(() => new MediaWatchdog(new FakePeerConnection(), { report() {}, server: 42 }), TypeError);
  });
});

describe('VRouterClient.watchMedia', () => {
  const clients = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.close();
  });

  async function joinedClient() {
    const { FakeWebSocket, sockets } = fakeWebSocketClass();
    const client = new VRouterClient({ urls: ['ws://r1/v1/client'], token: 'tok', WebSocket: FakeWebSocket, requestTimeoutMs: 500 });
    clients.push(client);
    const opened = client.connect();
    await until(() => sockets.length === 1);
    sockets[0].accept();
    await opened;
    const joining = client.join();
    await until(() => sockets[0].frames('join').length === 1);
    sockets[0].answer(sockets[0].lastFrame('join'), { type: 'assigned', server: SERVER_A, epoch: 3, resumed: false });
    await joining;
    const ws = sockets[0];
    // Plays the router: acknowledges every report.
    const acked = new Set();
    const ackReports = () => {
      for (const f of ws.frames('report')) {
        if (acked.has(f.id)) continue;
        acked.add(f.id);
        ws.answer(f, { type: 'ack' });
      }
    };
    return { client, ws, ackReports };
  }

  it('reports about the own server by default, and emits media and recovered on the client', async () => {
    const { client, ws, ackReports } = await joinedClient();
    const clock = fakeClock();
    const events = [];
    client.on('media', (e) => events.push({ type: 'media', ...e }));
    client.on('recovered', (e) => events.push({ type: 'recovered', ...e }));
    const pc = new FakePeerConnection();
    const dog = client.watchMedia(pc, { now: clock.now, setInterval: clock.setInterval, clearInterval: clock.clearInterval });
    running.push(dog);
    await clock.advance(1000);
    pc.rates(0, 90);
    await clock.advance(3000);
    assert.deepEqual(ws.frames('report').map(({ id, ...f }) => f), [
      { type: 'report', server: 'sfu-a', reason: 'no_media', detail: 'inbound video frozen 3.0s while server sent 180 packets' },
    ]);
    ackReports();
    await until(() => events.length === 1);
    assert.deepEqual(events[0], { type: 'media', server: 'sfu-a', reason: 'no_media', reported: true, detail: 'inbound video frozen 3.0s while server sent 180 packets' });
    pc.rates(90, 90);
    await clock.advance(3000);
    assert.deepEqual(events.map((e) => e.type), ['media', 'recovered']);
  });

  it('shares the (server, reason) cap between the watchdogs of one client', async () => {
    const { client, ws, ackReports } = await joinedClient();
    const clock = fakeClock();
    const events = [];
    client.on('media', (e) => events.push({ at: clock.now(), ...e }));
    const timers = { now: clock.now, setInterval: clock.setInterval, clearInterval: clock.clearInterval };
    const bob = new FakePeerConnection();
    const carol = new FakePeerConnection({ kinds: ['audio', 'video'] });
    running.push(client.watchMedia(bob, { ...timers, server: 'sfu-a', connection: 'bob' }));
    running.push(client.watchMedia(carol, { ...timers, server: () => 'sfu-a', connection: 'carol' }));
    await clock.advance(1000);
    bob.rates(0, 90);
    carol.rates(0, 90);
    await clock.advance(3000);
    assert.equal(ws.frames('report').length, 1, 'two connections through one black hole: one report');
    ackReports();
    await until(() => events.length === 2);
    const outcomes = events.map((e) => [e.connection, e.reported, e.skipped]).sort();
    assert.deepEqual(outcomes, [['bob', true, undefined], ['carol', false, 'interval']]);
    // Another reason is another slot.
    carol.set({ ice: 'failed', connection: 'failed' });
    await settle();
    assert.deepEqual(ws.frames('report').map((f) => f.reason), ['no_media', 'ice_failed']);
    ackReports();
    // Ten seconds after the first no_media, carol's freeze (still going) is reported.
    carol.set({ ice: 'connected', connection: 'connected' });
    await clock.advance(9999);
    assert.deepEqual(ws.frames('report').map((f) => f.reason), ['no_media', 'ice_failed']);
    await clock.advance(1);
    assert.deepEqual(ws.frames('report').map((f) => f.reason), ['no_media', 'ice_failed', 'no_media']);
    ackReports();
  });

  it('stops its watchdogs when the client closes', async () => {
    const { client } = await joinedClient();
    const clock = fakeClock();
    const dog = client.watchMedia(new FakePeerConnection(), { now: clock.now, setInterval: clock.setInterval, clearInterval: clock.clearInterval });
    assert.equal(dog.active, true);
    await client.close();
    assert.equal(dog.active, false);
    assert.equal(clock.timerCount, 0);
    assert.throws(() => client.watchMedia(new FakePeerConnection()), { code: 'client_closed' });
  });
});
