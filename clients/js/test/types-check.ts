// Compiled (not run) by `npm run check-types`: the declarations in src/index.d.ts must accept
// the documented usage and reject misuse (the @ts-expect-error lines).
import {
  MediaWatchdog,
  VRouterClient,
  VRouterError,
  fullJitterDelay,
  SUBPROTOCOL,
  type AssignedEvent,
  type Location,
  type MediaEvent,
  type MediaWatchdogOptions,
  type RecoveredEvent,
  type StateEvent,
} from '@vrouter/client';

const client = new VRouterClient({
  urls: ['wss://r1.example/v1/client', 'wss://r2.example/v1/client'],
  token: async () => 'jwt',
  WebSocket: globalThis.WebSocket,
  requestTimeoutMs: 5000,
  backoff: { baseMs: 100, maxMs: 5000 },
  lookupBatchMs: 2,
  random: Math.random,
});
new VRouterClient({ urls: ['ws://localhost:8080/v1/client'], token: 'jwt' });

const off: () => void = client.on('state', (e: StateEvent) => {
  if (e.state === 'open') console.log(e.replica, e.url);
});
off();
client.on('assigned', (a) => console.log(a.server.url, a.epoch, a.resumed, a.serverChanged, a.previous?.epoch));
client.on('moved', (m) => console.log(m.user, m.server.id, m.from, m.resync));
client.on('left', (l) => console.log(l.user, l.epoch));
client.on('migrate', (m) => console.log(m.server.url, m.reason));
client.on('goaway', (g) => console.log(g.reconnectAfterMs));
client.on('error', (e) => console.log(e.code, e.retryable));
// @ts-expect-error: no such event
client.on('teleported', () => {});

async function use(): Promise<void> {
  const session = await client.connect();
  console.log(session.limits.maxBatch, session.user, session.space);
  const mine: AssignedEvent = await client.join();
  console.log(mine.server.url);
  const where: Map<string, Location> = await client.lookup(['bob', 'carol']);
  console.log(where.get('bob')?.server?.id);
  await client.watch(['bob']);
  await client.unwatch(['bob']);
  await client.report('ice_failed', { detail: 'no candidate pair' });
  // @ts-expect-error: not a report reason
  await client.report('sad');
  await client.leave();
  await client.close();
  const state: 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed' = client.state;
  console.log(state, client.assignment?.epoch, client.watching.length, client.location('bob'), SUBPROTOCOL);
  try {
    await client.lookup(['x']);
  } catch (err) {
    if (err instanceof VRouterError && err.retryable) console.log(err.code, err.request, err.fromRouter);
  }
  console.log(fullJitterDelay(3, { baseMs: 100, maxMs: 1000 }));
}
void use;

// Media watchdog: a browser RTCPeerConnection fits, and so does a hand-made stand-in.
declare const subscriberPc: RTCPeerConnection;
const watchOptions: MediaWatchdogOptions = {
  server: () => client.location('bob')?.server?.id,
  intervalMs: 1000,
  noMediaAfterMs: 3000,
  recoverAfterMs: 2000,
  minReportIntervalMs: 10_000,
  maxReportsPerServer: 6,
  connection: 'subscribe:bob',
};
const dog = client.watchMedia(subscriberPc, watchOptions);
dog.stop();
const publisherDog: { stop(): void } = client.watchMedia(subscriberPc);
publisherDog.stop();
client.watchMedia(subscriberPc, { server: 'sfu-a', now: () => 0, setInterval: (fn, ms) => setInterval(fn, ms), clearInterval: (h) => clearInterval(h) });
client.on('media', (e: MediaEvent) => {
  const reason: 'no_media' | 'ice_failed' | 'dtls_failed' = e.reason;
  console.log(e.server?.length, reason, e.reported, e.detail, e.connection, e.skipped, e.error);
});
client.on('recovered', (e: RecoveredEvent) => console.log(e.server, e.reason, e.detail, e.connection));
// @ts-expect-error: the server is an id, not a Server
client.watchMedia(subscriberPc, { server: { id: 'sfu-a' } });
// @ts-expect-error: a peer connection is needed
client.watchMedia({});

const fakePc = { getStats: async () => new Map<string, unknown>(), connectionState: 'connected' };
const standalone = new MediaWatchdog(fakePc, {
  server: 'sfu-a',
  report: (reason, { server, detail }) => client.report(reason, { server, detail }),
});
standalone.on('media', (e) => console.log(e.reported));
standalone.on('recovered', (e) => console.log(e.detail));
standalone.on('stopped', () => {});
console.log(standalone.active, standalone.peerConnection);
standalone.stop();
// @ts-expect-error: without a client, report is required
new MediaWatchdog(fakePc, { server: 'sfu-a' });
