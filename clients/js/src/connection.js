// One WebSocket to one replica: request ids, answer matching and the close/error plumbing. It
// knows nothing about reconnecting; the client decides what a lost connection means.

export const SUBPROTOCOL = 'vrouter.v1';

const OPEN = 1;

export class Connection {
  /**
   * @param {string} url
   * @param {typeof WebSocket} WebSocketImpl
   * @param {{onOpen(c: Connection): void, onFrame(c: Connection, frame: object): void,
   *          onClose(c: Connection, info: {code: number, reason: string, error?: unknown}): void}} handler
   */
  constructor(url, WebSocketImpl, handler) {
    this.url = url;
    this.handler = handler;
    this.nextId = 1;
    /** id -> pending operation (the client's bookkeeping) */
    this.inflight = new Map();
    this.ready = false; // welcome received
    this.draining = false; // goaway received, or the replica answered shutting_down
    this.closed = false; // no more events will be delivered
    this.openedAt = 0;
    this.welcomedAt = 0;
    this.lastFrameAt = 0;
    this.timers = new Set();
    this.error = undefined;
    this.socket = new WebSocketImpl(url, SUBPROTOCOL);
    this.#listen();
  }

  #listen() {
    const s = this.socket;
    s.addEventListener('open', () => {
      if (this.closed) return;
      this.openedAt = Date.now();
      this.handler.onOpen(this);
    });
    s.addEventListener('message', (ev) => this.#onMessage(ev));
    // Browsers hide why a WebSocket failed (an HTTP 503 and a refused TCP connection look the
    // same); `ws` puts it in the error. Keep it for the close event that always follows.
    s.addEventListener('error', (ev) => {
      this.error = ev?.error ?? ev?.message ?? 'WebSocket error';
    });
    s.addEventListener('close', (ev) => {
      this.#finish({ code: ev?.code ?? 1006, reason: ev?.reason ?? '', error: this.error });
    });
  }

  #onMessage(ev) {
    if (this.closed) return;
    this.lastFrameAt = Date.now();
    if (typeof ev.data !== 'string') return; // the router sends text only (PROTOCOL.md §2.3)
    let frame;
    try {
      frame = JSON.parse(ev.data);
    } catch {
      return;
    }
    if (frame && typeof frame === 'object' && typeof frame.type === 'string') {
      this.handler.onFrame(this, frame);
    }
  }

  /** Sends one request with the next id and returns that id. */
  send(frame) {
    const id = this.nextId++;
    const { type, ...fields } = frame;
    this.sendRaw({ type, id, ...fields });
    return id;
  }

  sendRaw(frame) {
    if (this.closed || this.socket.readyState !== OPEN) return;
    try {
      this.socket.send(JSON.stringify(frame));
    } catch {
      // The socket is going down; its close event does the rest.
    }
  }

  /** A timer that dies with the connection. */
  setTimer(fn, ms) {
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (!this.closed) fn();
    }, ms);
    this.timers.add(t);
    return t;
  }

  clearTimer(t) {
    clearTimeout(t);
    this.timers.delete(t);
  }

  /**
   * Stops delivering events and closes the socket. `graceful` sends a close frame (1000) and lets
   * the handshake finish in the background; otherwise the socket is torn down at once where the
   * implementation allows it (`ws`'s terminate()), because a close handshake with a router that
   * stopped answering would hold the socket for tens of seconds.
   */
  shutdown(graceful) {
    if (this.closed) return;
    this.#stop();
    try {
      if (!graceful && typeof this.socket.terminate === 'function') this.socket.terminate();
      else this.socket.close(1000);
    } catch {
      // already closing
    }
  }

  /** Tears the socket down if it is still open (after a close handshake that did not finish). */
  forceClose() {
    if (this.socket.readyState !== 3 && typeof this.socket.terminate === 'function') {
      try {
        this.socket.terminate();
      } catch {
        // already gone
      }
    }
  }

  /** Resolves when the socket has really closed (or after `ms`, whichever comes first). */
  whenSocketClosed(ms) {
    if (this.socket.readyState === 3) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.socket.addEventListener('close', () => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  #stop() {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  #finish(info) {
    if (this.closed) return;
    this.#stop();
    this.handler.onClose(this, info);
  }
}
