// The operator dashboard (the admin port's `/`) in a real browser: it shows the fleet live, a
// simulated video server that turns into a black hole while users are on it turns `ejected` on
// the page without a reload, and the drain control drains and undrains a server.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { Stack, eventually, token } from './harness.mjs';

const BLACKHOLE_AT_S = 12;
const stack = new Stack();
let failed = false;
let usersPage;

before(async () => {
  await stack.start({
    fleet: [{ id: 'sim-0' }, { id: 'sim-1' }, { id: 'sim-2' }],
    behaviors: [`sim-2=blackhole@${BLACKHOLE_AT_S}`],
  });
  await eventually(async () => (await stack.adminGet('/v1/servers')).servers.every((s) => s.state === 'active'),
    15_000, 'three simulated video servers active');
  // Thirty people in a page of their own, so the black hole has users whose media it swallows.
  usersPage = await stack.newPage();
  await usersPage.goto(`${stack.origin}/pages/client.html`);
  await usersPage.waitForFunction(() => window.ready === true);
  const tokens = Array.from({ length: 30 }, (_, i) => token(`user-${i}`, `space-${i % 6}`));
  await usersPage.evaluate(async ({ url, tokens }) => {
    window.people = tokens.map((t) => new VRouterClient({ urls: [url], token: t }));
    await Promise.all(window.people.map(async (p) => {
      await p.connect();
      await p.join();
    }));
    log(`${window.people.length} people joined`);
  }, { url: stack.wss, tokens });
});
after(async () => {
  await usersPage?.evaluate(() => Promise.all(window.people.map((p) => p.close()))).catch(() => {});
  await stack.stop(failed);
});

const row = (id) => `tr[data-server="${id}"]`;
const stateOf = (page, id) => page.getAttribute(`${row(id)} td[data-state]`, 'data-state');

test('the dashboard shows the black hole turning ejected, live', async () => {
  try {
    const fleet = await stack.adminGet('/v1/servers');
    const onHole = fleet.servers.find((s) => s.id === 'sim-2').assigned;
    assert.ok(onHole > 0, `no user on sim-2 before it turns bad: ${JSON.stringify(fleet.servers.map((s) => [s.id, s.assigned]))}`);

    const page = await stack.newPage();
    await page.goto(`${stack.admin}/`);
    await page.waitForSelector(`${row('sim-2')} td[data-state="active"]`, { timeout: 10_000 });
    assert.equal(await page.textContent('#access'), 'access: write');  // loopback, no token configured
    const open = (await stack.adminGet('/v1/replica')).connections.open;
    assert.ok(open >= 30, `${open} open connections`);  // the 30 people (and the fleet's sockets)
    await eventually(async () => Number(await page.textContent('#conn-open')) === open, 5_000,
      'the page shows the replica\'s open connections');
    await stack.screenshot(page, 'dashboard-healthy');

    const before = Date.now();
    await page.waitForSelector(`${row('sim-2')} td[data-state="ejected"]`, { timeout: 40_000 });
    const seconds = (Date.now() - before) / 1000;
    assert.equal(await page.getAttribute(`${row('sim-2')} td[data-ejection]`, 'data-ejection'), 'not_forwarding');
    assert.match(await page.textContent('#events'), /sim-2: active → ejected/);
    // Its users are migrated off it, and the page keeps up without a reload.
    await eventually(async () => (await page.textContent(`${row('sim-2')} td:nth-child(4)`)) === '0',
      15_000, 'sim-2 shows 0 users after the migration');
    await stack.screenshot(page, 'dashboard-ejected');
    process.stdout.write(`dashboard: sim-2 ejected ${seconds.toFixed(1)} s after the page started waiting; ${onHole} users moved\n`);
    for (const other of ['sim-0', 'sim-1']) assert.equal(await stateOf(page, other), 'active');
  } catch (e) {
    failed = true;
    throw e;
  }
});

test('the drain control drains and undrains a server', async () => {
  try {
    const page = await stack.newPage();
    await page.goto(`${stack.admin}/`);
    await page.waitForSelector(`${row('sim-0')} button[data-action="drain"]`, { timeout: 10_000 });
    await page.click(`${row('sim-0')} button[data-action="drain"]`);
    await page.waitForSelector(`${row('sim-0')} td[data-state="draining"]`, { timeout: 10_000 });
    assert.equal((await stack.adminGet('/v1/servers/sim-0')).state, 'draining');
    await stack.screenshot(page, 'dashboard-drained');
    await page.click(`${row('sim-0')} button[data-action="undrain"]`);
    await page.waitForSelector(`${row('sim-0')} td[data-state="active"]`, { timeout: 10_000 });
    assert.equal((await stack.adminGet('/v1/servers/sim-0')).state, 'active');
  } catch (e) {
    failed = true;
    throw e;
  }
});
