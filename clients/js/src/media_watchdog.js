// MediaWatchdog: watches one RTCPeerConnection through getStats() and reports media failures to
// the router (`report`, PROTOCOL.md §5.7 and §7.9) by itself.
//
// What it looks for:
//
// * no_media, the black hole's signature. A video server that black-holes media still answers
//   RTCP: on a subscriber connection its sender reports keep arriving, so the `remote-outbound-rtp`
//   stat of a stream has `packetsSent` climbing while the `inbound-rtp` stat of the same stream
//   has `packetsReceived` frozen (measured with Janus and Chromium). A peer that stops sending
//   (muted, left) freezes both: that is not the server's fault and is never reported. Without
//   sender reports (no remote-outbound-rtp yet) a frozen stream cannot be told from a silent one,
//   so it is not reported either; a server that drops everything, RTCP included, ends in ICE
//   failure (consent freshness) and is reported as ice_failed.
// * ice_failed: iceConnectionState (or a transport's iceState) is `failed`.
// * dtls_failed: a transport's dtlsState is `failed`, or connectionState is `failed` while ICE is
//   connected.
//
// Outbound streams (a publisher connection) prove nothing about forwarding: the browser sending
// does not mean the server passes the media on, so they never produce no_media.

import { Emitter } from './emitter.js';

const DEFAULTS = {
  intervalMs: 1000,
  noMediaAfterMs: 3000,
  recoverAfterMs: 2000,
  minReportIntervalMs: 10_000,
  maxReportsPerServer: 6,
};

// Growth of the server's packetsSent, counted from the first poll that saw the stream frozen,
// that makes a frozen stream a black hole: at least this many packets, in at least two separate
// sender reports. A peer that stops sending can still produce one increase after the freeze (the
// sender report carrying its last packets may arrive a little after them); never two.
const MIN_SENT_GROWTH = 5;
const MIN_SENT_INCREASES = 2;

// PROTOCOL.md §5.7: `detail` is at most 256 bytes.
const MAX_DETAIL_BYTES = 256;

const ICE_UP = new Set(['connected', 'completed']);

/**
 * At most one report per (server, reason) per interval. One limiter is shared by every watchdog
 * of a client, so that two connections through the same broken server make one report.
 */
export class ReportLimiter {
  #last = new Map();

  /** Takes the slot of (server, reason) at time `now` if the last one is `intervalMs` old. */
  take(server, reason, now, intervalMs) {
    const key = `${reason}\u0000${server}`;
    const last = this.#last.get(key);
    if (last !== undefined && now - last < intervalMs) return false;
    this.#last.set(key, now);
    return true;
  }
}

export class MediaWatchdog {
  #pc;
  #opts;
  #report;
  #server;
  #connection;
  #limiter;
  #now;
  #clearInterval;
  #emitter = new Emitter();

  #timer = null;
  #stopped = false;
  #polling = false;
  #onIceChange;
  #onConnectionChange;

  #streams = new Map(); // inbound-rtp id -> stream state (see #checkMedia)
  // After a no_media, until its stream flows again: {key, kind, flowingSince, pending (capped by
  // the interval, to be sent when the cap opens), fresh (sender-report increases since)}.
  #alarm = null;
  #lastServer; // the server of the previous poll: evidence is not carried over to another server
  #sentPerServer = new Map(); // reports this watchdog sent, by server
  #iceFailed = false; // a failure being reported stays one report until the state changes
  #dtlsFailed = false;
  #statsIceFailed = false; // what the last getStats() said about the transports
  #statsDtlsFailed = false;

  /**
   * @param {RTCPeerConnection} pc the connection to watch (anything with getStats(); the state
   *   properties and addEventListener are used when present)
   * @param {object} options see index.d.ts (MediaWatchdogOptions); `report(reason, {server,
   *   detail})` is required here (VRouterClient.watchMedia passes its own report()), and
   *   `limiter` (a ReportLimiter) shares the interval cap between watchdogs
   */
  constructor(pc, options = {}) {
    if (!pc || typeof pc.getStats !== 'function') throw new TypeError('watchMedia needs an RTCPeerConnection (getStats)');
    if (typeof options.report !== 'function') throw new TypeError('options.report must be a function(reason, {server, detail})');
    if (options.server != null && typeof options.server !== 'string' && typeof options.server !== 'function') {
      throw new TypeError('options.server must be a video server id or a function returning one');
    }
    this.#pc = pc;
    this.#opts = { ...DEFAULTS };
    for (const k of Object.keys(DEFAULTS)) {
      const v = options[k];
      if (v === undefined) continue;
      if (typeof v !== 'number' || !(v >= 0) || (k === 'intervalMs' && !(v > 0))) {
        throw new TypeError(`options.${k} must be a ${k === 'intervalMs' ? 'positive' : 'non-negative'} number`);
      }
      this.#opts[k] = v;
    }
    this.#report = options.report;
    this.#server = options.server;
    this.#connection = options.connection;
    this.#limiter = options.limiter ?? new ReportLimiter();
    this.#now = options.now ?? (() => Date.now());
    const setIntervalFn = options.setInterval ?? ((fn, ms) => setInterval(fn, ms));
    this.#clearInterval = options.clearInterval ?? ((id) => clearInterval(id));
    this.#lastServer = this.#currentServer();

    this.#onIceChange = () => this.#guard(() => this.#checkStates(true));
    this.#onConnectionChange = () => this.#guard(() => this.#checkStates());
    if (typeof pc.addEventListener === 'function') {
      pc.addEventListener('iceconnectionstatechange', this.#onIceChange);
      pc.addEventListener('connectionstatechange', this.#onConnectionChange);
    }
    this.#timer = setIntervalFn(() => this.#tick(), this.#opts.intervalMs);
    // First look (the baseline "since the watch started") once the caller has attached listeners.
    Promise.resolve().then(() => this.#tick());
  }

  /** The RTCPeerConnection watched. */
  get peerConnection() {
    return this.#pc;
  }

  /** False once stop() was called or the connection closed. */
  get active() {
    return !this.#stopped;
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

  /** Stops polling and listening. Idempotent; a report already on its way still gets its event. */
  stop() {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#timer !== null) this.#clearInterval(this.#timer);
    this.#timer = null;
    if (typeof this.#pc.removeEventListener === 'function') {
      this.#pc.removeEventListener('iceconnectionstatechange', this.#onIceChange);
      this.#pc.removeEventListener('connectionstatechange', this.#onConnectionChange);
    }
    this.#emitter.emit('stopped', {});
  }

  // ---- polling ---------------------------------------------------------------------------------

  /** Timer and event callbacks: nothing may escape them. */
  #guard(fn) {
    if (this.#stopped) return;
    try {
      fn();
    } catch {
      // A peer connection that misbehaves (a getter that throws) costs one look, not the page.
    }
  }

  #tick() {
    if (this.#stopped || this.#polling) return; // a slow getStats(): skip rather than pile up
    this.#polling = true;
    this.#poll()
      .catch(() => {})
      .finally(() => {
        this.#polling = false;
      });
  }

  async #poll() {
    if (this.#closed()) return this.stop();
    let stats;
    try {
      stats = await this.#pc.getStats();
    } catch {
      // Closed meanwhile, or a browser hiccup: skip the stats of this poll, not its state check.
      return this.#checkStates();
    }
    if (this.#stopped) return;
    if (this.#closed()) return this.stop();
    const now = this.#now();
    const inbound = [];
    const remotes = [];
    let iceFailed = false;
    let dtlsFailed = false;
    forEachStat(stats, (s, key) => {
      if (s.type === 'inbound-rtp') inbound.push({ key: s.id ?? key, s });
      else if (s.type === 'remote-outbound-rtp') remotes.push({ key: s.id ?? key, s });
      else if (s.type === 'transport') {
        if (s.iceState === 'failed') iceFailed = true;
        if (s.dtlsState === 'failed') dtlsFailed = true;
      }
    });
    this.#statsIceFailed = iceFailed;
    this.#statsDtlsFailed = dtlsFailed;
    this.#checkStates();

    const server = this.#currentServer();
    if (server !== this.#lastServer) {
      // The media now goes through another server: what was seen on the old one blames nobody.
      this.#lastServer = server;
      this.#streams.clear();
      this.#alarm = null;
    }
    this.#checkMedia(now, inbound, remotes);
  }

  #closed() {
    return this.#pc.connectionState === 'closed' || this.#pc.signalingState === 'closed';
  }

  // ---- ICE and DTLS ----------------------------------------------------------------------------

  /**
   * ICE and DTLS failures, from the connection's states and the last poll's transport stats.
   * `iceEvent`: called from iceconnectionstatechange, during which connectionState may still be
   * the old one (the browser updates it and fires its event right after), so connectionState is
   * not read for DTLS then.
   */
  #checkStates(iceEvent = false) {
    if (this.#stopped) return;
    if (this.#closed()) return this.stop();
    const pc = this.#pc;
    const ice = pc.iceConnectionState;
    const connection = pc.connectionState;
    // The connection's own state when it has one (the stats are as old as the last poll).
    const iceFailed = ice !== undefined ? ice === 'failed' : this.#statsIceFailed;
    if (iceFailed && !this.#iceFailed) {
      const why = ice === 'failed' ? 'iceConnectionState failed' : 'transport iceState failed';
      this.#detect('ice_failed', `${why}${this.#stateSuffix()}`);
    }
    this.#iceFailed = iceFailed;
    if (iceEvent && !iceFailed) return;

    // A failed DTLS transport makes connectionState `failed` too; one whose ICE is up can only
    // have failed in DTLS.
    let dtlsFailed;
    if (iceFailed) dtlsFailed = false;
    else if (connection === undefined) dtlsFailed = this.#statsDtlsFailed;
    else dtlsFailed = connection === 'failed' && (this.#statsDtlsFailed || ICE_UP.has(ice));
    if (dtlsFailed && !this.#dtlsFailed) {
      const why = this.#statsDtlsFailed ? 'transport dtlsState failed' : `connectionState failed with ICE ${ice}`;
      this.#detect('dtls_failed', `${why}${this.#stateSuffix()}`);
    }
    this.#dtlsFailed = dtlsFailed;
  }

  #stateSuffix() {
    const pc = this.#pc;
    const parts = [];
    if (pc.connectionState !== undefined) parts.push(`connection ${pc.connectionState}`);
    if (pc.iceConnectionState !== undefined) parts.push(`ice ${pc.iceConnectionState}`);
    return parts.length ? ` (${parts.join(', ')})` : '';
  }

  // ---- no_media --------------------------------------------------------------------------------

  /**
   * One poll's inbound streams. Per stream (keyed by its inbound-rtp id): `recv` the last
   * packetsReceived, `grewAt` the last poll that saw it grow (or the first poll that saw the
   * stream), and, from the first poll that saw it frozen, `base` the server's packetsSent then,
   * `lastSent` the latest one, `increases` how many times it grew since.
   */
  #checkMedia(now, inbound, remotes) {
    const seen = new Set();
    let grewAny = false;
    const suspects = [];
    for (const { key, s } of inbound) {
      const recv = s.packetsReceived;
      if (typeof recv !== 'number') continue;
      seen.add(key);
      const sent = remoteSentFor(s, key, inbound, remotes);
      let st = this.#streams.get(key);
      if (!st) {
        // First sight: the baseline. Whether it is flowing is known only at the next poll.
        st = { kind: s.kind ?? 'media', recv, grewAt: now, base: undefined, lastSent: undefined, increases: 0, grew: false, sentUp: false };
        this.#streams.set(key, st);
        continue;
      }
      st.grew = recv > st.recv;
      st.sentUp = false;
      if (recv !== st.recv) {
        // Grew (or a counter reset, which is no evidence of anything): a new freeze window.
        st.recv = recv;
        st.grewAt = now;
        st.base = undefined;
        st.lastSent = undefined;
        st.increases = 0;
        if (st.grew) grewAny = true;
        continue;
      }
      if (typeof sent !== 'number') continue; // no sender report: a silent peer looks the same
      if (st.base === undefined || sent < st.lastSent) {
        st.base = sent; // first frozen poll with a sender report (or the sender's counter reset)
        st.lastSent = sent;
        st.increases = 0;
      } else if (sent > st.lastSent) {
        st.lastSent = sent;
        st.increases++;
        st.sentUp = true;
      }
      const frozenMs = now - st.grewAt;
      const sentDuringFreeze = st.lastSent - st.base;
      if (frozenMs >= this.#opts.noMediaAfterMs && st.increases >= MIN_SENT_INCREASES && sentDuringFreeze >= MIN_SENT_GROWTH) {
        suspects.push({ key, st, frozenMs, sentDuringFreeze });
      }
    }
    for (const key of this.#streams.keys()) if (!seen.has(key)) this.#streams.delete(key);
    const transportFailed = this.#iceFailed || this.#dtlsFailed;

    const alarm = this.#alarm;
    if (alarm) {
      if (alarm.pending) this.#retryCapped(alarm, transportFailed ? undefined : suspects.find((x) => x.key === alarm.key));
      return this.#checkRecovery(now, grewAny);
    }
    if (suspects.length === 0 || transportFailed) return;
    suspects.sort((a, b) => b.frozenMs - a.frozenMs);
    const suspect = suspects[0];
    const outcome = this.#detect('no_media', noMediaDetail(suspect, suspects.length - 1));
    // A detection capped by the interval is sent later if the freeze goes on (#retryCapped).
    this.#alarm = { key: suspect.key, kind: suspect.st.kind, flowingSince: null, pending: outcome === 'interval', fresh: 0 };
  }

  /**
   * A no_media detected while the interval cap was closed (another watchdog, or this one, had
   * just reported this server) is sent when the cap opens if the stream is still frozen and the
   * server has counted more packets sent since, in at least two sender reports (fresh evidence,
   * not what a peer that stopped could leave behind).
   */
  #retryCapped(alarm, suspect) {
    const st = this.#streams.get(alarm.key);
    if (!st) return;
    if (st.grew) alarm.fresh = 0;
    else if (st.sentUp) alarm.fresh++;
    if (!suspect || alarm.fresh < MIN_SENT_INCREASES) return;
    const outcome = this.#detect('no_media', noMediaDetail(suspect, 0), { quietIfCapped: true });
    alarm.pending = outcome === 'interval';
  }

  /** After a no_media: the stream (or, if it is gone, any stream) must flow for recoverAfterMs. */
  #checkRecovery(now, grewAny) {
    const alarm = this.#alarm;
    const st = this.#streams.get(alarm.key);
    const flowing = st ? st.grew : grewAny;
    if (!flowing) {
      alarm.flowingSince = null;
      return;
    }
    alarm.flowingSince ??= now;
    const flowingMs = now - alarm.flowingSince;
    if (flowingMs < this.#opts.recoverAfterMs) return;
    this.#alarm = null;
    const event = { server: this.#currentServer(), reason: 'no_media', detail: `inbound ${alarm.kind} flowing again for ${seconds(flowingMs)}` };
    if (this.#connection !== undefined) event.connection = this.#connection;
    this.#emitter.emit('recovered', event);
  }

  // ---- reporting -------------------------------------------------------------------------------

  #currentServer() {
    let server = this.#server;
    if (typeof server === 'function') {
      try {
        server = server();
      } catch {
        server = null;
      }
    }
    return typeof server === 'string' && server !== '' ? server : null;
  }

  /**
   * A failure seen: report it unless capped, and emit `media` with the outcome (not for a retry
   * that is capped again: `quietIfCapped`). Returns 'sent' or why it was not sent.
   */
  #detect(reason, detail, { quietIfCapped = false } = {}) {
    detail = truncateUtf8(detail, MAX_DETAIL_BYTES);
    const server = this.#currentServer();
    const event = { server, reason, reported: false, detail };
    if (this.#connection !== undefined) event.connection = this.#connection;
    const emit = () => this.#emitter.emit('media', event);
    const skip = (why) => {
      event.skipped = why;
      if (!quietIfCapped) emit();
      return why;
    };
    if (server === null) return skip('no_server');
    const sent = this.#sentPerServer.get(server) ?? 0;
    if (sent >= this.#opts.maxReportsPerServer) return skip('max_reports');
    if (!this.#limiter.take(server, reason, this.#now(), this.#opts.minReportIntervalMs)) return skip('interval');
    this.#sentPerServer.set(server, sent + 1);
    let sending;
    try {
      sending = Promise.resolve(this.#report(reason, { server, detail }));
    } catch (err) {
      sending = Promise.reject(err);
    }
    sending.then(
      () => {
        event.reported = true;
        emit();
      },
      (err) => {
        event.error = err;
        emit();
      },
    );
    return 'sent';
  }
}

// ---- stats helpers -----------------------------------------------------------------------------

/** RTCStatsReport and Map both have forEach(value, key). */
function forEachStat(stats, fn) {
  if (stats && typeof stats.forEach === 'function') stats.forEach((s, key) => s && typeof s === 'object' && fn(s, key));
}

/**
 * The server's packetsSent for an inbound stream: its remote-outbound-rtp, found by `localId`,
 * by the inbound's `remoteId`, by SSRC, or as the only one of its kind.
 */
function remoteSentFor(s, key, inbound, remotes) {
  const sentOf = (r) => (r && typeof r.s.packetsSent === 'number' ? r.s.packetsSent : undefined);
  let r = remotes.find((x) => x.s.localId === key || (s.id !== undefined && x.s.localId === s.id));
  if (!r && s.remoteId !== undefined) r = remotes.find((x) => x.key === s.remoteId);
  if (!r && s.ssrc !== undefined) r = remotes.find((x) => x.s.ssrc === s.ssrc && (x.s.kind === undefined || s.kind === undefined || x.s.kind === s.kind));
  if (!r && s.kind !== undefined) {
    const sameKind = remotes.filter((x) => x.s.kind === s.kind && x.s.localId === undefined);
    if (sameKind.length === 1 && inbound.filter((x) => x.s.kind === s.kind).length === 1) r = sameKind[0];
  }
  return sentOf(r);
}

function noMediaDetail({ st, frozenMs, sentDuringFreeze }, others) {
  const more = others > 0 ? ` (+${others} more stream${others > 1 ? 's' : ''})` : '';
  return `inbound ${st.kind} frozen ${seconds(frozenMs)} while server sent ${sentDuringFreeze} packets${more}`;
}

function seconds(ms) {
  return `${(ms / 1000).toFixed(1)}s`;
}

function truncateUtf8(text, maxBytes) {
  text = String(text);
  const bytes = new TextEncoder().encode(text);
  if (bytes.length <= maxBytes) return text;
  // Cut on a character boundary: drop a partial trailing sequence.
  return new TextDecoder().decode(bytes.slice(0, maxBytes)).replace(/\uFFFD$/, '');
}
