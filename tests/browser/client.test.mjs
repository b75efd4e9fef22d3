// The JavaScript client library in a real browser page (Debian's chromium): it connects over wss
// with the browser's WebSocket (self-signed certificate), joins, looks a user up, watches them,
// and hears `moved` when the operator drains that user's video server (the user gets `migrate`).

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { Stack, eventually, token } from './harness.mjs';

const stack = new Stack();
let failed = false;

before(async () => {
  await stack.start({ fleet: [{ id: 'sim-0' }, { id: 'sim-1' }] });
  await eventually(async () => (await stack.adminGet('/v1/servers')).servers.every((s) => s.state === 'active'),
    15_000, 'both simulated video servers active');
});
after(() => stack.stop(failed));

test('client in a page: wss, join, lookup, watch, moved after a drain', async () => {
  try {
    const page = await stack.newPage();
    await page.goto(`${stack.origin}/pages/client.html`);
    await page.waitForFunction(() => window.ready === true);

    const joined = await page.evaluate(async ({ url, aliceToken, bobToken }) => {
      const make = (t) => new VRouterClient({ urls: [url], token: t });
      window.alice = make(aliceToken);
      window.bob = make(bobToken);
      window.states = [];
      window.alice.on('state', (e) => window.states.push(e.state));
      await Promise.all([window.alice.connect(), window.bob.connect()]);
      const a = await window.alice.join();
      const b = await window.bob.join();
      log(`alice joined: ${a.server.id} (epoch ${a.epoch}); bob joined: ${b.server.id}`);
      const found = (await window.alice.lookup(['bob', 'nobody']));
      log(`alice looked up bob: ${found.get('bob').server?.id}; nobody: ${found.get('nobody').server}`);
      window.moves = [];
      window.migrations = [];
      window.alice.on('moved', (e) => {
        window.moves.push({ user: e.user, from: e.from, to: e.server.id, epoch: e.epoch });
        log(`alice hears: ${e.user} moved ${e.from} -> ${e.server.id}`);
      });
      window.bob.on('migrate', (e) => {
        window.migrations.push({ to: e.server.id, reason: e.reason, epoch: e.epoch });
        log(`bob told to migrate to ${e.server.id} (${e.reason})`);
      });
      const watched = await window.alice.watch(['bob']);
      log(`alice watches bob: on ${watched.get('bob').server?.id}`);
      return {
        alice: a.server.id,
        bob: b.server.id,
        bobEpoch: b.epoch,
        lookedUp: found.get('bob').server?.id,
        nobody: found.get('nobody').server,
        watched: watched.get('bob').server?.id,
        url: window.alice.url,
        session: window.alice.session,
      };
    }, { url: stack.wss, aliceToken: token('alice', 'room'), bobToken: token('bob', 'room') });

    assert.match(joined.url, /^wss:\/\//);
    assert.equal(joined.session.user, 'alice');
    assert.equal(joined.lookedUp, joined.bob);
    assert.equal(joined.watched, joined.bob);
    assert.equal(joined.nobody, null);

    // The operator drains bob's server: the router moves bob and tells him; alice hears it.
    assert.equal(await stack.adminPost(`/v1/servers/${joined.bob}/drain`), 200);
    await page.waitForFunction(() => window.moves.length > 0 && window.migrations.length > 0, null,
      { timeout: 15_000 });
    const { moves, migrations } = await page.evaluate(() => ({ moves: window.moves, migrations: window.migrations }));
    assert.equal(moves[0].user, 'bob');
    assert.equal(moves[0].from, joined.bob);
    assert.notEqual(moves[0].to, joined.bob);
    assert.equal(migrations[0].to, moves[0].to);
    assert.equal(migrations[0].reason, 'drain');
    assert.ok(migrations[0].epoch > joined.bobEpoch);
    const status = await stack.adminGet('/v1/assignments/bob');
    assert.equal(status.server, moves[0].to);
    await stack.screenshot(page, 'client-moved');
    await page.evaluate(() => Promise.all([window.alice.close(), window.bob.close()]));
  } catch (e) {
    failed = true;
    throw e;
  }
});
