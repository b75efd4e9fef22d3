// VRouterClient: a vrouter.v1 client (proto/PROTOCOL.md) that survives replicas going away.
//
// Model. The client keeps what the application *wants* (to be joined; the set of watched users)
// apart from the connection it happens to have. Every connection, first or after a failure,
// starts with `hello` and then restores that wanted state (`resume` with the last assignment, or
// `join`; `watch` for every watched user), so a replica dying costs the application a few
// events at most, never its video server. Requests are operations that wait in a queue until a
// connection is ready, then are sent with an id and matched to their answer.

import { Connection } from './connection.js';
import { Emitter } from './emitter.js';
import { AUTH_CODES, VRouterError } from './errors.js';
import { LocationTable } from './locations.js';
import { MediaWatchdog, ReportLimiter } from './media_watchdog.js';
import { chunkIds, fullJitterDelay, isValidId } from './util.js';

const DEFAULTS = {
  requestTimeoutMs: 10_000,
  connectTimeoutMs: 10_000,
  lookupBatchMs: 2,
  // The router closes a connection with 1008 when more than 64 requests wait behind one that
  // waits for its store (PROTOCOL.md §9.1): stay well under that.
  maxInFlight: 32,
  // Browsers do not let a page see the router's pings, so a connection whose network path died
  // without a TCP reset looks merely quiet. After this long without a frame the client sends an
  // empty `lookup` (valid, and cheap for the router); no answer within requestTimeoutMs replaces
  // the connection. 0 turns it off.
  heartbeatMs: 30_000,
};
// resetAfterMs: a connection must stay up this long after its `welcome` to count as healthy and
// start the backoff over; one that dies sooner (a replica that crashes right after accepting)
// keeps the backoff growing instead of making the client reconnect in a tight loop.
const DEFAULT_BACKOFF = { baseMs: 250, maxMs: 10_000, resetAfterMs: 2_000 };

// Until a replica's `welcome` says otherwise (PROTOCOL.md §10 defaults).
const DEFAULT_LIMITS = { maxMessageBytes: 131_072, maxBatch: 1000, maxWatches: 1000 };

const ANSWER_TYPES = {
  hello: 'welcome',
  join: 'assigned',
  resume: 'assigned',
  lookup: 'lookup_result',
  watch: 'watch_result',
  unwatch: 'ack',
  report: 'ack',
  leave: 'ack',
};

// join/resume failures that need nothing from #onJoinFailed: the next welcome restores the
// assignment, or the client has stopped.
const JOIN_RESTORED_LATER = new Set(['cancelled', 'connection_lost', 'client_closed', 'session_replaced', 'auth_failed']);

const REPORT_REASONS = new Set(['no_media', 'ice_failed', 'dtls_failed', 'connect_failed', 'other']);

// A goaway's reconnect_after_ms is at most 80 % of the drain window (10 s by default); a larger
// value is not trusted to keep the client on a replica that is going away.
const GOAWAY_MAX_DELAY_MS = 60_000;

export class VRouterClient {
  #opts;
  #backoff;
  #random;
  #WebSocket;
  #emitter = new Emitter();

  #state = 'idle';
  #everOpened = false;
  #conn = null;
  #reconnectTimer = null;
  #attempt = 0; // failed connection attempts since the last healthy connection
  #avoidUrl = null; // the replica that failed or is draining: not picked next when there are others
  #limits = DEFAULT_LIMITS;
  #session = null;
  #connectWaiters = [];

  /** Operations waiting for a ready connection: restore first (`#urgent`), then the application's. */
  #urgent = [];
  #queue = [];

  #wantJoined = false;
  #assignment = null; // {server, epoch} of the latest assigned/migrate: what `resume` presents
  #joinedConn = null; // the connection that owns the assignment on the router
  #joinOp = null;
  #joinRetryTimer = null;
  #joinAttempt = 0;
  #joinWaiters = [];

  #watchSet = new Set();
  #locations = new LocationTable();
  #lookupBatch = null;

  #watchdogs = new Set(); // media watchdogs running (watchMedia)
  #reportLimiter = new ReportLimiter(); // one report per (server, reason) per interval, for all of them

  /**
   * @param {object} options see index.d.ts (VRouterClientOptions)
   */
  constructor(options = {}) {
    const urls = Array.isArray(options.urls) ? options.urls.filter((u) => typeof u === 'string') : [];
    if (urls.length === 0) throw new TypeError('options.urls must list at least one replica URL');
    if (typeof options.token !== 'string' && typeof options.token !== 'function') {
      throw new TypeError('options.token must be a string or a function returning one');
    }
    this.#WebSocket = options.WebSocket ?? globalThis.WebSocket;
    if (typeof this.#WebSocket !== 'function') {
      throw new TypeError('no WebSocket implementation: pass options.WebSocket (in Node: the `ws` package)');
    }
    this.#opts = { ...DEFAULTS, ...pickDefined(options, Object.keys(DEFAULTS)), urls: [...urls], token: options.token };
    this.#backoff = { ...DEFAULT_BACKOFF, ...pickDefined(options.backoff ?? {}, Object.keys(DEFAULT_BACKOFF)) };
    this.#random = options.random ?? Math.random;
  }

  // ---- public state ----------------------------------------------------------------------------

  /** 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed' */
  get state() {
    return this.#state;
  }

  /** The current assignment ({server, epoch}) or null. */
  get assignment() {
    return this.#assignment && { server: this.#assignment.server, epoch: this.#assignment.epoch };
  }

  /** What the current replica said in `welcome` (replica, session, user, space, limits), or null. */
  get session() {
    return this.#conn?.ready ? this.#session : null;
  }

  /** URL of the replica of the current connection (ready or not), or null. */
  get url() {
    return this.#conn?.url ?? null;
  }

  /** The users this client watches. */
  get watching() {
    return [...this.#watchSet];
  }

  /** The last known location of a watched user ({user, server, epoch}), undefined if unknown. */
  location(user) {
    return this.#watchSet.has(user) ? this.#locations.get(user) : undefined;
  }

  on(type, listener) {
    return this.#emitter.on(type, listener);
  }

  off(type, listener) {
    this.#emitter.off(type, listener);
  }

  once(type, listener) {
    return this.#emitter.once(type, listener);
  }

  // ---- lifecycle -------------------------------------------------------------------------------

  /**
   * Starts connecting (and reconnecting, from then on, until close()). Resolves with the first
   * `welcome`; rejects only if the client stops for good first (close(), refused token, session
   * replaced). Calling it again returns the same outcome.
   */
  connect() {
    if (this.#state === 'closed') return Promise.reject(closedError());
    if (this.#state === 'open') return Promise.resolve(this.#session);
    const done = new Promise((resolve, reject) => this.#connectWaiters.push({ resolve, reject }));
    if (this.#state === 'idle') {
      this.#setState('connecting', {});
      this.#open();
    }
    return done;
  }

  /**
   * Closes the connection (1000) and stops for good: pending requests reject with
   * `client_closed`. The assignment is not ended (call leave() first for that); the router keeps
   * it for its resume grace period.
   */
  async close() {
    if (this.#state === 'closed') return;
    const conn = this.#conn;
    this.#stop(closedError(), { graceful: true });
    if (!conn) return;
    await conn.whenSocketClosed(2000);
    conn.forceClose(); // a replica that never answers our close frame must not hold the socket
  }

  // ---- requests --------------------------------------------------------------------------------

  /**
   * Gets this user's assignment: `join`, or `resume` when the client already holds one. Retries
   * retryable refusals (`unavailable`, `no_video_server`, `shutting_down` on another replica)
   * with backoff until requestTimeoutMs. Once joined, the client restores the assignment after
   * every reconnect until leave().
   */
  join() {
    if (!this.#usable()) return Promise.reject(this.#unusableError());
    this.#wantJoined = true;
    return new Promise((resolve, reject) => {
      const waiter = { resolve, reject, lastError: null };
      waiter.timer = setTimeout(() => this.#joinWaiterExpired(waiter), this.#opts.requestTimeoutMs);
      this.#joinWaiters.push(waiter);
      this.#ensureJoined(false);
    });
  }

  /**
   * Ends the assignment (`leave`): watchers get `left` at once. Not retried: if the connection
   * is down or drops before the `ack`, the client forgets the assignment anyway and the router
   * ends it after its resume grace period.
   */
  async leave() {
    this.#assertUsable();
    this.#wantJoined = false;
    this.#cancelJoinRetry();
    this.#settleJoinWaiters(new VRouterError('cancelled', 'leave() was called'));
    const conn = this.#conn;
    if (this.#joinOp && !this.#joinOp.conn) this.#cancel(this.#joinOp); // not sent yet: drop it
    const attached = conn?.ready && (this.#joinedConn === conn || this.#joinOp?.conn === conn);
    if (!attached) {
      this.#dropAssignment();
      return;
    }
    try {
      await this.#call({ type: 'leave' });
    } catch (err) {
      if (err.code !== 'not_joined') throw err;
    } finally {
      this.#dropAssignment();
    }
  }

  /**
   * Where are these users now? Resolves a Map user -> {user, server, epoch} (server null when
   * the user has no assignment). Lookups made within lookupBatchMs of each other share one
   * `lookup` frame (split to the replica's limits), each user asked once. Retried on another
   * connection if the connection drops.
   */
  lookup(users) {
    return new Promise((resolve, reject) => {
      if (!this.#usable()) return reject(this.#unusableError());
      const ids = uniqueIds(users, 'lookup');
      if (ids instanceof VRouterError) return reject(ids);
      if (ids.length === 0) return resolve(new Map());
      const batch = (this.#lookupBatch ??= this.#openLookupBatch());
      const waiter = { ids, resolve, reject, done: false };
      waiter.timer = setTimeout(() => {
        batch.waiters.delete(waiter);
        settle(waiter, () => reject(timeoutError('lookup', this.#opts.requestTimeoutMs)));
      }, this.#opts.requestTimeoutMs);
      batch.waiters.add(waiter);
    });
  }

  /**
   * Watches users: resolves their current locations, then `moved`/`left` events follow. The
   * watch set survives reconnects (it is sent again on every new connection, and what changed
   * meanwhile is emitted with `resync: true`). Respects the replica's max_watches.
   */
  async watch(users) {
    this.#assertUsable();
    const ids = uniqueIds(users, 'watch');
    if (ids instanceof VRouterError) throw ids;
    const added = new Set(ids.filter((u) => !this.#watchSet.has(u)));
    if (this.#watchSet.size + added.size > this.#limits.maxWatches) {
      const total = this.#watchSet.size + added.size;
      throw new VRouterError('too_many_watches', `watching ${total} users would exceed max_watches ${this.#limits.maxWatches}`, {
        request: 'watch',
      });
    }
    for (const u of added) this.#watchSet.add(u);
    const chunks = chunkIds(ids, this.#limits);
    const settled = await Promise.allSettled(
      chunks.map((users) => this.#call({ type: 'watch', users }, { retryOnLoss: true })),
    );
    const out = new Map();
    let failure = null;
    settled.forEach((s, i) => {
      if (s.status === 'fulfilled') return this.#applyWatchResult(chunks[i], s.value, out);
      failure ??= s.reason;
      // A refused watch applied nothing (§5.5); a timed-out one may still be applied, and is
      // sent again with the rest of the set after any reconnect.
      if (s.reason.fromRouter) for (const u of chunks[i]) if (added.has(u)) this.#watchSet.delete(u);
    });
    if (failure) throw failure;
    return out;
  }

  /** Stops watching users. Their events stop at once, even if a push is still on its way. */
  async unwatch(users) {
    this.#assertUsable();
    const ids = uniqueIds(users, 'unwatch');
    if (ids instanceof VRouterError) throw ids;
    const removed = ids.filter((u) => this.#watchSet.delete(u));
    for (const u of removed) this.#locations.delete(u);
    // Without a ready connection there is nothing to undo: watches die with their connection.
    if (removed.length === 0 || !this.#conn?.ready) return;
    const calls = chunkIds(removed, this.#limits).map((users) => this.#call({ type: 'unwatch', users }));
    try {
      await Promise.all(calls);
    } catch (err) {
      if (err.code !== 'connection_lost') throw err;
    }
  }

  /**
   * Reports a media failure with this user's video server (`report`): reason is one of
   * no_media, ice_failed, dtls_failed, connect_failed, other. Not retried on connection loss.
   */
  async report(reason, { server, detail } = {}) {
    this.#assertUsable();
    if (!REPORT_REASONS.has(reason)) {
      throw new TypeError(`report reason must be one of ${[...REPORT_REASONS].join(', ')}`);
    }
    const target = server ?? this.#assignment?.server.id;
    if (!target) {
      throw new VRouterError('not_joined', 'no assignment to report about: join() first', { request: 'report' });
    }
    const frame = { type: 'report', server: target, reason };
    if (detail != null) frame.detail = String(detail);
    await this.#call(frame);
  }

  /**
   * Watches an RTCPeerConnection's stats and reports media failures (no_media, ice_failed,
   * dtls_failed) by itself; every detection is emitted as a `media` event, a stream flowing again
   * after a no_media as `recovered`. `server` (an id or a function returning the current one)
   * names the video server the media goes through; by default this client's own assignment's.
   * Returns the watchdog (stop() ends it; it also ends when the connection closes, or with the
   * client). See media_watchdog.js and index.d.ts (MediaWatchdogOptions).
   */
  watchMedia(pc, options = {}) {
    if (this.#state === 'closed') throw closedError();
    const dog = new MediaWatchdog(pc, {
      ...options,
      server: options.server ?? (() => this.#assignment?.server.id ?? null),
      report: (reason, o) => this.report(reason, o),
      limiter: this.#reportLimiter,
    });
    this.#watchdogs.add(dog);
    dog.on('media', (event) => this.#emitter.emit('media', event));
    dog.on('recovered', (event) => this.#emitter.emit('recovered', event));
    dog.on('stopped', () => this.#watchdogs.delete(dog));
    return dog;
  }

  // ---- operations: queue, send, answer, timeout ------------------------------------------------

  /**
   * One request. `frame` may be a function, evaluated when the request is sent (so a `resume`
   * presents the assignment known at that moment). Options: retryOnLoss (sent again on the next
   * connection if this one drops before the answer; only for idempotent requests), urgent
   * (restore traffic, before the application's), freshConn (join/resume: never on a replica
   * that said goaway).
   */
  #newOp(frame, { retryOnLoss = false, urgent = false, freshConn = false } = {}) {
    const type = typeof frame === 'function' ? null : frame.type;
    const op = { frame, type, retryOnLoss, freshConn, conn: null, id: null, sentAt: 0 };
    op.promise = new Promise((resolve, reject) => {
      op.resolve = resolve;
      op.reject = reject;
    });
    op.timer = setTimeout(() => this.#expire(op), this.#opts.requestTimeoutMs);
    (urgent ? this.#urgent : this.#queue).push(op);
    this.#pump();
    return op;
  }

  #call(frame, options) {
    if (!this.#usable()) return Promise.reject(this.#unusableError());
    return this.#newOp(frame, options).promise;
  }

  /** Sends queued operations while the connection is ready and has room in its window. */
  #pump() {
    const conn = this.#conn;
    if (!conn?.ready) return;
    for (const queue of [this.#urgent, this.#queue]) {
      for (let i = 0; i < queue.length && conn.inflight.size < this.#opts.maxInFlight; ) {
        const op = queue[i];
        if (op.freshConn && conn.draining) {
          i++;
          continue;
        }
        queue.splice(i, 1);
        this.#transmit(conn, op);
      }
    }
  }

  #transmit(conn, op) {
    const frame = typeof op.frame === 'function' ? op.frame() : op.frame;
    op.type = frame.type;
    op.conn = conn;
    op.sentAt = Date.now();
    op.id = conn.send(frame);
    conn.inflight.set(op.id, op);
  }

  #onAnswer(conn, frame) {
    const op = conn.inflight.get(frame.id);
    if (!op) return; // the answer to a request that timed out
    this.#unlink(op);
    if (frame.type === 'error') op.reject(VRouterError.fromFrame(frame, op.type));
    else if (frame.type !== ANSWER_TYPES[op.type]) {
      const expected = ANSWER_TYPES[op.type];
      op.reject(new VRouterError('protocol_error', `expected ${expected} for ${op.type}, got ${frame.type}`, { request: op.type }));
    } else op.resolve(frame);
    this.#pump();
  }

  /** Takes an operation out of whatever queue or window holds it and stops its timer. */
  #unlink(op) {
    clearTimeout(op.timer);
    if (op.conn) op.conn.inflight.delete(op.id);
    for (const queue of [this.#urgent, this.#queue]) {
      const i = queue.indexOf(op);
      if (i >= 0) queue.splice(i, 1);
    }
  }

  #cancel(op) {
    this.#unlink(op);
    op.reject(new VRouterError('cancelled', `${op.type ?? 'request'} cancelled`, { request: op.type }));
  }

  #expire(op) {
    this.#unlink(op);
    op.reject(timeoutError(op.type ?? 'request', this.#opts.requestTimeoutMs));
    // Silence since the request went out means the replica is stuck or the network path is dead
    // without TCP noticing (a browser cannot ping): give up on this connection, not just the request.
    const conn = op.conn;
    if (conn && conn === this.#conn && conn.lastFrameAt < op.sentAt) {
      const ms = this.#opts.requestTimeoutMs;
      this.#abandon(conn, `no answer to ${op.type} within ${ms} ms and nothing else from the router`);
    }
  }

  // ---- connections -----------------------------------------------------------------------------

  async #open() {
    this.#reconnectTimer = null;
    const url = this.#pickUrl();
    let token;
    try {
      token = await this.#freshToken();
    } catch (err) {
      if (this.#state === 'closed') return;
      this.#emitError(new VRouterError('token_error', `token function failed: ${err?.message ?? err}`, { cause: err }));
      return this.#scheduleReconnect({ url, code: 0, reason: 'token_error', error: err });
    }
    if (this.#state === 'closed' || this.#conn) return;
    let conn;
    try {
      conn = new Connection(url, this.#WebSocket, {
        onOpen: (c) => this.#onSocketOpen(c, token),
        onFrame: (c, f) => this.#onFrame(c, f),
        onClose: (c, info) => this.#lost(c, info),
      });
    } catch (err) {
      return this.#scheduleReconnect({ url, code: 0, reason: 'WebSocket constructor failed', error: err });
    }
    this.#conn = conn;
    conn.connectTimer = conn.setTimer(
      () => this.#abandon(conn, `no welcome within ${this.#opts.connectTimeoutMs} ms`),
      this.#opts.connectTimeoutMs,
    );
  }

  /** The token for the next hello; a token function gets connectTimeoutMs to come up with one. */
  async #freshToken() {
    const source = this.#opts.token;
    if (typeof source === 'string') return source;
    let timer;
    const late = new Promise((_, reject) => {
      const ms = this.#opts.connectTimeoutMs;
      timer = setTimeout(() => reject(new Error(`no token within ${ms} ms`)), ms);
    });
    try {
      const t = await Promise.race([source(), late]);
      if (typeof t !== 'string' || t.length === 0) throw new TypeError('the token function returned no token');
      return t;
    } finally {
      clearTimeout(timer);
    }
  }

  /** A random replica, avoiding the one that just failed or is draining when there are others. */
  #pickUrl() {
    const urls = this.#opts.urls;
    const candidates = urls.length > 1 ? urls.filter((u) => u !== this.#avoidUrl) : urls;
    const pool = candidates.length > 0 ? candidates : urls;
    return pool[Math.min(pool.length - 1, Math.floor(this.#random() * pool.length))];
  }

  #onSocketOpen(conn, token) {
    // PROTOCOL.md §3: `hello` first; the token travels only in it (the query string is ignored).
    conn.helloId = conn.send({ type: 'hello', token });
  }

  #onFrame(conn, frame) {
    switch (frame.type) {
      case 'moved':
        return this.#onMoved(frame);
      case 'left':
        return this.#onLeft(frame);
      case 'migrate':
        return this.#onMigrate(frame);
      case 'goaway':
        return this.#onGoaway(conn, frame);
      default:
        if (!conn.ready) return this.#onHandshakeAnswer(conn, frame);
        if (Number.isSafeInteger(frame.id)) return this.#onAnswer(conn, frame);
        if (frame.type === 'error') this.#emitError(VRouterError.fromFrame(frame));
      // Unknown pushes are ignored (PROTOCOL.md §11).
    }
  }

  #onHandshakeAnswer(conn, frame) {
    if (frame.id !== conn.helloId) return;
    if (frame.type === 'welcome') return this.#onWelcome(conn, frame);
    const err = frame.type === 'error'
      ? VRouterError.fromFrame(frame, 'hello')
      : new VRouterError('protocol_error', `expected welcome, got ${frame.type}`, { request: 'hello' });
    // A retryable refusal (`rate_limited`: too many hellos for this user or from this address,
    // PROTOCOL.md §8) passes: reconnect with backoff, as after a lost connection.
    if (err.retryable) {
      conn.shutdown(true);
      return this.#lost(conn, { code: 1000, reason: err.code, error: err });
    }
    // Any other refused hello does not get better by repetition (the token is fresh each time
    // already): stop rather than hammer the router (the auth codes come with close 4001, §5.1).
    this.#stop(err, { graceful: !AUTH_CODES.has(err.code) });
  }

  #onWelcome(conn, frame) {
    conn.clearTimer(conn.connectTimer);
    conn.ready = true;
    conn.welcomedAt = Date.now();
    this.#limits = parseLimits(frame.limits);
    this.#session = {
      replica: frame.replica,
      session: frame.session,
      user: frame.user,
      space: frame.space,
      limits: { ...this.#limits },
    };
    this.#everOpened = true;
    this.#restore();
    this.#setState('open', { url: conn.url, ...this.#session });
    for (const w of this.#connectWaiters.splice(0)) w.resolve(this.#session);
    this.#flushLookups();
    this.#pump();
    this.#heartbeat(conn);
  }

  /**
   * Probes a connection that has been quiet for heartbeatMs (see DEFAULTS). The check is due
   * heartbeatMs after the last frame received, not on a fixed tick: a tick would find the
   * connection quiet one tick in two (the answer to the previous probe lands just after it).
   */
  #heartbeat(conn) {
    const every = this.#opts.heartbeatMs;
    if (!(every > 0)) return;
    const quietFor = Date.now() - conn.lastFrameAt;
    conn.setTimer(() => {
      if (conn === this.#conn && conn.inflight.size === 0 && Date.now() - conn.lastFrameAt >= every) {
        // Answered: fine. Timed out: #expire replaces the connection, since nothing came back.
        this.#newOp({ type: 'lookup', users: [] }).promise.catch(() => {});
      }
      this.#heartbeat(conn);
    }, quietFor < every ? every - quietFor : every);
  }

  /** After every welcome: get the assignment back and watch everything again (§7.5, §13). */
  #restore() {
    this.#cancelJoinRetry();
    const waiting = this.#joinOp;
    if (waiting && !waiting.conn) {
      // A join/resume queued while disconnected goes first, before any report that needs it.
      this.#unlink(waiting);
      this.#urgent.unshift(waiting);
      waiting.timer = setTimeout(() => this.#expire(waiting), this.#opts.requestTimeoutMs);
    }
    if (this.#wantJoined) this.#ensureJoined(true);
    for (const users of chunkIds([...this.#watchSet], this.#limits)) {
      this.#newOp({ type: 'watch', users }, { urgent: true }).promise
        .then((answer) => this.#applyWatchResult(users, answer, null))
        .catch((err) => this.#backgroundError(err));
    }
  }

  /** The connection is gone (closed by the router, failed, or given up by the client). */
  #lost(conn, { code, reason, error, immediate = false }) {
    if (conn !== this.#conn) return;
    if (code === 4000) {
      const err = new VRouterError('session_replaced', 'another session of this user took over (close 4000)', { closeCode: 4000 });
      return this.#stop(err, { graceful: false });
    }
    if (code === 4001) {
      const err = new VRouterError('auth_failed', `authentication failed (close 4001${reason ? `: ${reason}` : ''})`, { closeCode: 4001 });
      return this.#stop(err, { graceful: false });
    }
    this.#conn = null;
    if (this.#joinedConn === conn) this.#joinedConn = null;
    this.#avoidUrl = conn.url;
    this.#failInflight(conn);
    if (conn.welcomedAt && Date.now() - conn.welcomedAt >= this.#backoff.resetAfterMs) this.#attempt = 0;
    // 1001 is the close that follows goaway (or a shutdown): the replica is going, not failing.
    const now = immediate || code === 1001 || conn.draining;
    this.#scheduleReconnect({ url: conn.url, code, reason, error, immediate: now });
  }

  #scheduleReconnect({ url, code, reason, error, immediate = false }) {
    if (this.#state === 'closed') return;
    const delayMs = immediate ? 0 : fullJitterDelay(this.#attempt++, this.#backoff, this.#random);
    // Announced for every attempt, not only on a change of state: the delay is news each time.
    this.#setState(this.#everOpened ? 'reconnecting' : 'connecting', { url, code, reason, error, delayMs }, true);
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = setTimeout(() => this.#open(), delayMs);
  }

  /** Requests in flight on a lost connection: idempotent ones go back to the queue, others fail. */
  #failInflight(conn) {
    const ops = [...conn.inflight.values()].sort((a, b) => a.id - b.id);
    conn.inflight.clear();
    const again = [];
    for (const op of ops) {
      op.conn = null;
      op.id = null;
      if (op.retryOnLoss) again.push(op);
      else {
        clearTimeout(op.timer);
        const message = `the connection to ${conn.url} dropped before the answer to ${op.type}`;
        op.reject(new VRouterError('connection_lost', message, { request: op.type }));
      }
    }
    this.#queue.unshift(...again);
  }

  /** Client-side give-up: tear the socket down now and treat it as a failure. */
  #abandon(conn, why) {
    conn.shutdown(false);
    this.#lost(conn, { code: 1006, reason: why });
  }

  /** Planned switch (goaway, shutting_down): close politely and reconnect elsewhere at once. */
  #retire(conn, why) {
    conn.shutdown(true);
    this.#lost(conn, { code: 1001, reason: why, immediate: true });
  }

  /** Stops for good: nothing is retried and every pending promise rejects with `err`. */
  #stop(err, { graceful }) {
    if (this.#state === 'closed') return;
    const conn = this.#conn;
    this.#conn = null;
    clearTimeout(this.#reconnectTimer);
    this.#cancelJoinRetry();
    conn?.shutdown(graceful);
    const ops = [...this.#urgent.splice(0), ...this.#queue.splice(0), ...(conn ? conn.inflight.values() : [])];
    for (const op of ops) {
      clearTimeout(op.timer);
      op.reject(err);
    }
    this.#settleJoinWaiters(err);
    this.#failLookups(err);
    for (const dog of [...this.#watchdogs]) dog.stop(); // nobody to report to any more
    for (const w of this.#connectWaiters.splice(0)) w.reject(err);
    this.#setState('closed', { error: err, code: err.closeCode });
    if (err.code !== 'client_closed') this.#emitError(err);
  }

  // ---- join / resume ---------------------------------------------------------------------------

  /** Sends `join`/`resume` if the client wants an assignment and none is on its way. */
  #ensureJoined(urgent) {
    if (!this.#wantJoined || this.#joinOp || this.#joinRetryTimer) return;
    const conn = this.#conn;
    if (conn?.ready && this.#joinedConn === conn && this.#joinWaiters.length === 0) return;
    const frame = () => this.#assignment
      ? { type: 'resume', server: this.#assignment.server.id, epoch: this.#assignment.epoch }
      : { type: 'join' };
    const op = this.#newOp(frame, { urgent, freshConn: true });
    this.#joinOp = op;
    op.promise
      .then((answer) => {
        if (!isServer(answer.server) || !Number.isSafeInteger(answer.epoch)) {
          throw new VRouterError('protocol_error', 'assigned without a server or epoch', { request: op.type });
        }
        this.#onAssigned(op, answer);
      })
      .catch((err) => this.#onJoinFailed(op, err));
  }

  #onAssigned(op, answer) {
    if (this.#joinOp === op) this.#joinOp = null;
    this.#joinAttempt = 0;
    const previous = this.#assignment;
    this.#assignment = { server: answer.server, epoch: answer.epoch };
    this.#joinedConn = op.conn;
    if (!this.#wantJoined) return; // leave() was called meanwhile; its `leave` follows this
    const detail = {
      server: answer.server,
      epoch: answer.epoch,
      resumed: answer.resumed === true,
      previous,
      serverChanged: previous?.server.id !== answer.server.id,
    };
    this.#settleJoinWaiters(null, detail);
    this.#emitter.emit('assigned', detail);
  }

  #onJoinFailed(op, err) {
    if (this.#joinOp !== op) return;
    this.#joinOp = null;
    if (JOIN_RESTORED_LATER.has(err.code) || AUTH_CODES.has(err.code)) return;
    for (const w of this.#joinWaiters) w.lastError = err;
    if (err.code === 'shutting_down') {
      // This replica is draining (its goaway may not have arrived yet): get the assignment elsewhere.
      if (op.conn && op.conn === this.#conn) {
        op.conn.draining = true;
        this.#retire(op.conn, 'shutting_down');
      }
      return;
    }
    if (err.retryable) {
      const delay = fullJitterDelay(this.#joinAttempt++, this.#backoff, this.#random);
      this.#joinRetryTimer = setTimeout(() => {
        this.#joinRetryTimer = null;
        this.#ensureJoined(false);
      }, delay);
      return;
    }
    this.#settleJoinWaiters(err);
    if (!this.#assignment) this.#wantJoined = false;
    this.#backgroundError(err);
  }

  #joinWaiterExpired(waiter) {
    const i = this.#joinWaiters.indexOf(waiter);
    if (i < 0) return;
    this.#joinWaiters.splice(i, 1);
    waiter.reject(waiter.lastError ?? timeoutError('join', this.#opts.requestTimeoutMs));
    // Nobody waits for a first assignment any more: stop asking. An assignment the client holds
    // keeps being restored.
    if (this.#joinWaiters.length === 0 && !this.#assignment) {
      this.#wantJoined = false;
      this.#cancelJoinRetry();
    }
  }

  /** Resolves (with `detail`) or rejects (with `err`) every join() waiting. */
  #settleJoinWaiters(err, detail) {
    for (const w of this.#joinWaiters.splice(0)) {
      clearTimeout(w.timer);
      if (err) w.reject(err);
      else w.resolve(detail);
    }
  }

  #cancelJoinRetry() {
    clearTimeout(this.#joinRetryTimer);
    this.#joinRetryTimer = null;
  }

  #dropAssignment() {
    this.#assignment = null;
    this.#joinedConn = null;
  }

  // ---- lookups ---------------------------------------------------------------------------------

  #openLookupBatch() {
    const batch = { waiters: new Set(), due: false };
    setTimeout(() => {
      batch.due = true;
      this.#flushLookups();
    }, this.#opts.lookupBatchMs);
    return batch;
  }

  /**
   * Sends the due batch as few `lookup` frames as the limits allow. Waits for a ready connection
   * (the limits of the replica are known only then); lookups made meanwhile join the batch.
   */
  #flushLookups() {
    const batch = this.#lookupBatch;
    if (!batch?.due || !this.#conn?.ready) return;
    this.#lookupBatch = null;
    const waiters = [...batch.waiters];
    const unique = [...new Set(waiters.flatMap((w) => w.ids))];
    if (unique.length === 0) return;
    const chunks = chunkIds(unique, this.#limits);
    const found = new Map();
    const chunkOf = new Map();
    const sent = chunks.map((users, i) => {
      for (const u of users) chunkOf.set(u, i);
      return this.#call({ type: 'lookup', users }, { retryOnLoss: true }).then((answer) => {
        resultsOf(answer, users).forEach((r, j) => found.set(users[j], r));
      });
    });
    for (const w of waiters) {
      const needed = [...new Set(w.ids.map((u) => sent[chunkOf.get(u)]))];
      Promise.all(needed).then(
        () => settle(w, () => w.resolve(new Map(w.ids.map((u) => [u, found.get(u)])))),
        (err) => settle(w, () => w.reject(err)),
      );
    }
  }

  #failLookups(err) {
    const batch = this.#lookupBatch;
    this.#lookupBatch = null;
    for (const w of batch?.waiters ?? []) settle(w, () => w.reject(err));
  }

  // ---- pushes ----------------------------------------------------------------------------------

  #onMoved(frame) {
    if (!this.#watchSet.has(frame.user) || !isServer(frame.server) || !Number.isSafeInteger(frame.epoch)) return;
    const event = this.#locations.applyMoved(frame);
    if (event) this.#emitter.emit('moved', event);
  }

  #onLeft(frame) {
    if (!this.#watchSet.has(frame.user) || !Number.isSafeInteger(frame.epoch)) return;
    const event = this.#locations.applyLeft(frame);
    if (event) this.#emitter.emit('left', event);
  }

  /** The router moved this user's assignment (its server drained, ejected or gone, §7.10). */
  #onMigrate(frame) {
    if (!this.#wantJoined || !isServer(frame.server) || !Number.isSafeInteger(frame.epoch)) return;
    const previous = this.#assignment;
    if (previous && frame.epoch <= previous.epoch) return; // stale
    this.#assignment = { server: frame.server, epoch: frame.epoch };
    this.#emitter.emit('migrate', { server: frame.server, epoch: frame.epoch, reason: frame.reason, previous });
  }

  /**
   * The replica is shutting down (§7.11). Keep using it until reconnect_after_ms (the router's
   * way to spread its clients' reconnects) or its 1001 close, then move to another replica.
   */
  #onGoaway(conn, frame) {
    if (conn.draining) return;
    conn.draining = true;
    const delay = Math.min(GOAWAY_MAX_DELAY_MS, Math.max(0, Number(frame.reconnect_after_ms) || 0));
    this.#emitter.emit('goaway', { url: conn.url, reason: frame.reason, reconnectAfterMs: delay });
    if (!conn.ready) return this.#retire(conn, 'goaway before welcome'); // nothing to lose: go now
    conn.setTimer(() => this.#retire(conn, 'goaway'), delay);
  }

  #applyWatchResult(users, answer, out) {
    resultsOf(answer, users).forEach((location, j) => {
      const user = users[j];
      out?.set(user, location);
      if (!this.#watchSet.has(user)) return; // unwatched meanwhile
      const change = this.#locations.applySnapshot({ ...location, user });
      if (change) this.#emitter.emit(change.type, change.event);
    });
  }

  // ---- small helpers ---------------------------------------------------------------------------

  #setState(state, detail, always = false) {
    if (state === this.#state && !always) return;
    const previous = this.#state;
    this.#state = state;
    this.#emitter.emit('state', { state, previous, ...detail });
  }

  #usable() {
    return this.#state !== 'idle' && this.#state !== 'closed';
  }

  #unusableError() {
    return this.#state === 'idle'
      ? new VRouterError('not_connected', 'call connect() first')
      : closedError();
  }

  #assertUsable() {
    if (!this.#usable()) throw this.#unusableError();
  }

  /** Errors of the client's own background traffic; transport hiccups are reported as states. */
  #backgroundError(err) {
    if (['connection_lost', 'client_closed', 'cancelled', 'timeout'].includes(err?.code)) return;
    this.#emitError(err);
  }

  #emitError(err) {
    this.#emitter.emit('error', err);
  }
}

// ---- module helpers ----------------------------------------------------------------------------

function pickDefined(source, keys) {
  const out = {};
  for (const k of keys) if (source[k] !== undefined) out[k] = source[k];
  return out;
}

function parseLimits(limits) {
  const read = (v, fallback) => (Number.isSafeInteger(v) && v > 0 ? v : fallback);
  return {
    maxMessageBytes: read(limits?.max_message_bytes, DEFAULT_LIMITS.maxMessageBytes),
    maxBatch: read(limits?.max_batch, DEFAULT_LIMITS.maxBatch),
    maxWatches: read(limits?.max_watches, DEFAULT_LIMITS.maxWatches),
  };
}

/** Deduplicated ids, or a VRouterError naming the first invalid one. */
function uniqueIds(users, request) {
  if (!Array.isArray(users)) {
    return new VRouterError('invalid_message', `${request}: users must be an array of ids`, { request });
  }
  const bad = users.find((u) => !isValidId(u));
  if (bad !== undefined) {
    const why = `${request}: ${JSON.stringify(bad)} is not a valid id (1-128 bytes, no control characters)`;
    return new VRouterError('invalid_message', why, { request });
  }
  return [...new Set(users)];
}

/** The `results` of a lookup_result/watch_result: one location per requested id, in order (§6.3). */
function resultsOf(answer, users) {
  const results = answer.results;
  if (!Array.isArray(results) || results.length !== users.length) {
    throw new VRouterError('protocol_error', `${answer.type} has ${results?.length} results for ${users.length} users`);
  }
  return results;
}

function isServer(s) {
  return s !== null && typeof s === 'object' && typeof s.id === 'string';
}

function settle(waiter, fn) {
  if (waiter.done) return;
  waiter.done = true;
  clearTimeout(waiter.timer);
  fn();
}

function timeoutError(request, ms) {
  return new VRouterError('timeout', `no answer to ${request} within ${ms} ms`, { request });
}

function closedError() {
  return new VRouterError('client_closed', 'the client is closed');
}
