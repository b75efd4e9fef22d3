// Replicas going away under a client: kill -9 (the client notices, fails over, resumes on the
// same video server, its watches work again) and SIGTERM (goaway, then the same, in the window
// the router asks for).
import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';

import {
  Cluster, firstDraws, nextEvent, pick, recordingWebSocket, skipReason, testPrintingLogs,
} from './harness.mjs';

describe('replica failover (3 replicas, Redis store)', { skip: skipReason ?? false, timeout: 40_000 }, () => {
  let cluster;
  let alice; // the client under test, first on r0
  let aliceWire; // what alice's client sent
  let first; // alice's first assignment

  before(async () => {
    cluster = await Cluster.start();
  });

  after(() => cluster?.stop());

  const it = testPrintingLogs(() => cluster);

  /** A user pinned to one replica who joins, so that watchers of it get `moved`. */
  async function arrive(user, replica) {
    const c = cluster.client(user, { urls: [replica.url] });
    await c.connect();
    return c.join();
  }

  it('joins on r0 and watches users on other replicas', async () => {
    aliceWire = recordingWebSocket();
    alice = cluster.client('alice', { random: firstDraws(pick(0)), WebSocket: aliceWire.WebSocket });
    await alice.connect();
    assert.equal(alice.url, cluster.replicas[0].url);
    first = await alice.join();
    await alice.watch(['bob', 'carol']);
    const moved = nextEvent(alice, 'moved', (m) => m.user === 'bob');
    const bob = await arrive('bob', cluster.replicas[1]);
    assert.equal((await moved).epoch, bob.epoch);
  });

  it('kill -9 of its replica: reconnects to another, resumes on the same server, watches deliver', async () => {
    const dead = cluster.replicas[0];
    const watcher = cluster.client('watcher', { urls: [cluster.replicas[2].url] });
    await watcher.connect();
    await watcher.watch(['alice']);
    const reconnecting = nextEvent(alice, 'state', (s) => s.state === 'reconnecting');
    const reopened = nextEvent(alice, 'state', (s) => s.state === 'open');
    const resumed = nextEvent(alice, 'assigned');
    const killedAt = Date.now();
    dead.signal('SIGKILL');
    await dead.exit;

    const lost = await reconnecting;
    assert.equal(lost.url, dead.url);
    const open = await reopened;
    assert.notEqual(open.url, dead.url, 'picked a live replica, not the one that just failed');
    const again = await resumed;
    const elapsed = Date.now() - killedAt;
    assert.equal(again.resumed, true, JSON.stringify(again));
    assert.equal(again.server.id, first.server.id, 'kept its video server');
    assert.equal(again.serverChanged, false);
    assert.ok(again.epoch >= first.epoch);
    const resume = aliceWire.sent.filter((f) => f.type === 'resume');
    assert.deepEqual(resume.map(({ server, epoch }) => ({ server, epoch })), [{ server: first.server.id, epoch: first.epoch }]);
    assert.ok(elapsed < 5000, `resumed ${elapsed} ms after the kill`);

    // The watch set came back with the new connection: carol arriving is news for alice.
    const carolMoved = nextEvent(alice, 'moved', (m) => m.user === 'carol');
    const carol = await arrive('carol', cluster.replicas[2]);
    assert.equal((await carolMoved).server.id, carol.server.id);
    // alice's watchers never saw her leave: the resume took the assignment back in the grace period.
    const seen = (await watcher.lookup(['alice'])).get('alice');
    assert.equal(seen.server.id, first.server.id);
    assert.equal(watcher.location('alice').server.id, first.server.id);
  });

  it('SIGTERM of its replica: goaway, then reconnects elsewhere within reconnect_after_ms and resumes', async () => {
    const draining = cluster.replicaOf(alice.url);
    const survivor = cluster.replicas.find((r) => r.alive && r !== draining);
    const goaway = nextEvent(alice, 'goaway');
    const reopened = nextEvent(alice, 'state', (s) => s.state === 'open');
    const resumed = nextEvent(alice, 'assigned');
    const termAt = Date.now();
    draining.signal('SIGTERM');

    const g = await goaway;
    assert.equal(g.url, draining.url);
    assert.equal(g.reason, 'shutdown');
    assert.ok(g.reconnectAfterMs >= 0 && g.reconnectAfterMs <= 1200, `reconnect_after_ms ${g.reconnectAfterMs} (drain window 1500 ms)`);
    const open = await reopened;
    const after = Date.now() - termAt;
    assert.equal(open.url, survivor.url);
    assert.ok(after >= g.reconnectAfterMs - 5, `left the draining replica after ${after} ms, before reconnect_after_ms ${g.reconnectAfterMs}`);
    assert.ok(after < g.reconnectAfterMs + 1000, `reconnected ${after} ms after SIGTERM`);
    const again = await resumed;
    assert.equal(again.resumed, true);
    assert.equal(again.server.id, first.server.id);
    assert.equal(await draining.exit, 0, 'the drained replica exits 0');
    // No join/resume went to the draining replica after its goaway.
    assert.equal(aliceWire.sent.filter((f) => f.type === 'resume').length, 2);

    const daveMoved = nextEvent(alice, 'moved', (m) => m.user === 'dave');
    await alice.watch(['dave']);
    await arrive('dave', survivor);
    await daveMoved;
  });
});
