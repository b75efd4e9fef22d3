// One person of the real-media test (and of `scripts/demo --real-media`): joins through vrouter,
// publishes a fake camera into the Janus the router assigned, watches the others and subscribes to
// each one's feed on that person's server, follows `migrate` and `moved`, and lets the client's
// media watchdog report what it sees. The test reads `window.vrm.snapshot()`.
//
// Query: user, token, router (ws URL), others (comma-separated users), watchdog (1: on).
import { VRouterClient } from '/lib/index.js';

const q = new URLSearchParams(location.search);
const me = q.get('user');
const others = (q.get('others') || '').split(',').filter(Boolean);
const ROOM = 1234;
const log = [];
const event = (kind, data = {}) => log.push({ t: Date.now(), kind, ...data });

/* global Janus */
await new Promise((resolve) => Janus.init({ debug: false, callback: resolve }));

// One Janus session per video server, shared by the publisher and subscriber handles on it.
const sessions = new Map();
function janusSession(url) {
  if (!sessions.has(url)) {
    sessions.set(url, new Promise((resolve, reject) => {
      const j = new Janus({
        server: url,
        iceServers: [],
        success: () => resolve(j),
        error: (e) => {
          sessions.delete(url);
          event('janus_error', { url, error: String(e) });
          reject(new Error(`janus ${url}: ${e}`));
        },
      });
    }));
  }
  return sessions.get(url);
}

function attach(url, callbacks) {
  return janusSession(url).then((j) => new Promise((resolve, reject) => {
    j.attach({ plugin: 'janus.plugin.videoroom', ...callbacks, success: resolve, error: reject });
  }));
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const colour = (id) => `hsl(${[...(id || '')].reduce((h, c) => (h * 31 + c.charCodeAt(0)) % 360, 7)} 70% 50%)`;

function tile(key, label) {
  let el = document.getElementById(`tile-${key}`);
  if (!el) {
    el = document.createElement('div');
    el.className = 'tile';
    el.id = `tile-${key}`;
    el.innerHTML = '<video autoplay playsinline muted></video><div class="label"></div>';
    document.getElementById('tiles').append(el);
  }
  el.querySelector('.label').textContent = label;
  return el;
}

function showTrack(el, track) {
  const video = el.querySelector('video');
  video.srcObject = new MediaStream([track]);
}

// ---- publishing -------------------------------------------------------------------------------

let publication = null; // {server, handle, published}

async function publish(server) {
  if (publication?.handle) {
    try { publication.handle.detach(); } catch { /* the old server may be gone */ }
  }
  const mine = { server, handle: null, published: false };
  publication = mine;
  event('publishing', { server: server.id });
  for (let attempt = 0; publication === mine; attempt++) {
    try {
      await new Promise((resolve, reject) => {
        let handle = null;
        attach(server.url, {
          onmessage(msg, jsep) {
            if (jsep) handle.handleRemoteJsep({ jsep });
            if (msg.error) reject(new Error(`publish: ${msg.error}`));
            if (msg.videoroom === 'joined') {
              handle.createOffer({
                tracks: [
                  { type: 'audio', capture: true, recv: false },
                  { type: 'video', capture: { width: 320, height: 240, frameRate: 15 }, recv: false },
                ],
                success: (offer) => handle.send({ message: { request: 'configure', audio: true, video: true }, jsep: offer }),
                error: (e) => reject(new Error(`offer: ${e}`)),
              });
            }
          },
          onlocaltrack(track, on) {
            if (on && track.kind === 'video') showTrack(tile('me', `${me} (me)`), track);
          },
          webrtcState(on) {
            if (on && publication === mine) {
              mine.published = true;
              event('published', { server: server.id });
              tile('me', `${me} (me) on ${server.id}`).style.borderColor = colour(server.id);
              resolve();
            }
          },
        }).then((h) => {
          if (publication !== mine) {
            h.detach(); // replaced (a migrate) while attaching: no ghost publisher
            return reject(new Error('replaced'));
          }
          handle = h;
          mine.handle = h;
          h.send({ message: { request: 'join', ptype: 'publisher', room: ROOM, display: me } });
        }, reject);
        setTimeout(() => reject(new Error('publish timed out')), 15000);
      });
      return;
    } catch (e) {
      event('publish_failed', { server: server.id, error: String(e), attempt });
      try { mine.handle?.detach(); } catch { /* ignore */ }
      await sleep(Math.min(2000, 250 * 2 ** attempt));
    }
  }
}

// ---- subscribing ------------------------------------------------------------------------------

const subscriptions = new Map(); // user -> {server, handle, watchdog}
const watchdogOn = q.get('watchdog') === '1';

function unsubscribe(user) {
  const sub = subscriptions.get(user);
  if (!sub) return;
  subscriptions.delete(user);
  sub.watchdog?.stop();
  try { sub.handle?.detach(); } catch { /* ignore */ }
}

// The feed id of `user` on a server: the participant whose display name is the user.
function findFeed(handle, user) {
  return new Promise((resolve) => {
    handle.send({
      message: { request: 'listparticipants', room: ROOM },
      success: (r) => resolve((r?.participants || []).find((p) => p.display === user && p.publisher)?.id),
      error: () => resolve(undefined),
    });
  });
}

async function subscribe(user, server) {
  unsubscribe(user);
  const sub = { server, handle: null, watchdog: null };
  subscriptions.set(user, sub);
  event('subscribing', { user, server: server.id });
  const el = tile(user, `${user} on ${server.id}`);
  el.style.borderColor = colour(server.id);
  for (let attempt = 0; subscriptions.get(user) === sub; attempt++) {
    try {
      await new Promise((resolve, reject) => {
        let handle = null;
        attach(server.url, {
          onmessage(msg, jsep) {
            if (msg.error) reject(new Error(`subscribe: ${msg.error}`));
            if (jsep) {
              handle.createAnswer({
                jsep,
                tracks: [],
                success: (answer) => handle.send({ message: { request: 'start', room: ROOM }, jsep: answer }),
                error: (e) => reject(new Error(`answer: ${e}`)),
              });
            }
          },
          onremotetrack(track, mid, on) {
            if (on && track.kind === 'video') showTrack(el, track);
          },
          webrtcState(on) {
            if (!on || subscriptions.get(user) !== sub || handle !== sub.handle) return;
            event('subscribed', { user, server: server.id });
            sub.watchdog?.stop();
            if (watchdogOn) {
              sub.watchdog = client.watchMedia(handle.webrtcStuff.pc, { server: () => sub.server.id });
            }
            resolve();
          },
        }).then(async (h) => {
          handle = h;
          sub.handle = h;
          const feed = await findFeed(h, user);
          if (feed === undefined) return reject(new Error(`no feed of ${user} on ${server.id} yet`));
          h.send({ message: { request: 'join', ptype: 'subscriber', room: ROOM, streams: [{ feed }] } });
        }, reject);
        setTimeout(() => reject(new Error('subscribe timed out')), 15000);
      });
      return;
    } catch (e) {
      if (attempt % 5 === 4) event('subscribe_retry', { user, server: server.id, error: String(e), attempt });
      try { sub.handle?.detach(); } catch { /* ignore */ }
      sub.handle = null;
      await sleep(Math.min(1000, 200 * 2 ** Math.min(attempt, 3)));
    }
  }
}

// ---- the router -------------------------------------------------------------------------------

const client = new VRouterClient({ urls: [q.get('router')], token: q.get('token') });
client.on('state', (e) => event('state', { state: e.state }));
client.on('assigned', (e) => {
  event('assigned', { server: e.server.id, resumed: e.resumed, serverChanged: e.serverChanged });
  if (e.serverChanged && e.previous) publish(e.server);
});
client.on('migrate', (e) => {
  event('migrate', { server: e.server.id, from: e.previous?.server.id ?? null, reason: e.reason });
  publish(e.server);
});
client.on('moved', (e) => {
  event('moved', { user: e.user, server: e.server.id, from: e.from });
  if (e.user !== me) subscribe(e.user, e.server);
});
client.on('left', (e) => {
  event('left', { user: e.user });
  unsubscribe(e.user);
});
client.on('media', (e) => event('media', { server: e.server, reason: e.reason, reported: e.reported, detail: e.detail }));
client.on('recovered', (e) => event('recovered', { server: e.server }));

document.getElementById('me').textContent = `${me}`;
await client.connect();
const assigned = await client.join();
publish(assigned.server);
const located = await client.watch(others);
for (const [user, loc] of located) if (loc.server) subscribe(user, loc.server);

async function inboundVideoPackets(pc) {
  if (!pc) return null;
  let packets = null;
  for (const r of (await pc.getStats()).values()) {
    if (r.type === 'inbound-rtp' && r.kind === 'video') packets = (packets ?? 0) + r.packetsReceived;
  }
  return packets;
}

window.vrm = {
  async snapshot() {
    const subs = {};
    for (const [user, s] of subscriptions) {
      subs[user] = { server: s.server.id, packets: await inboundVideoPackets(s.handle?.webrtcStuff?.pc) };
    }
    return {
      user: me,
      server: client.assignment?.server.id ?? null,
      published: publication?.published ? publication.server.id : null,
      subs,
      events: log,
    };
  },
};
event('ready');
