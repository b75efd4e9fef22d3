// A scripted stand-in for the browser WebSocket API: each instance records what the client sends,
// and the test plays the router (open, frames, close) by hand.

export function fakeWebSocketClass() {
  const sockets = [];

  class FakeWebSocket {
    static CONNECTING = 0;
    static OPEN = 1;
    static CLOSING = 2;
    static CLOSED = 3;

    constructor(url, protocol) {
      this.url = url;
      this.protocol = protocol;
      this.readyState = 0;
      this.sent = [];
      this.closedWith = null;
      this.listeners = new Map();
      sockets.push(this);
    }

    addEventListener(type, fn) {
      if (!this.listeners.has(type)) this.listeners.set(type, []);
      this.listeners.get(type).push(fn);
    }

    #dispatch(type, event) {
      for (const fn of this.listeners.get(type) ?? []) fn(event);
    }

    send(data) {
      if (this.readyState !== 1) throw new Error('not open');
      this.sent.push(JSON.parse(data));
    }

    close(code = 1000, reason = '') {
      if (this.readyState >= 2) return;
      this.closedWith = { code, reason };
      this.readyState = 2;
      // A real close handshake completes asynchronously.
      setTimeout(() => this.serverClose(code, reason), 0);
    }

    // ---- the test's side ----

    /** Frames of one type the client sent. */
    frames(type) {
      return this.sent.filter((f) => f.type === type);
    }

    lastFrame(type) {
      const all = this.frames(type);
      return all[all.length - 1];
    }

    serverOpen() {
      this.readyState = 1;
      this.#dispatch('open', {});
    }

    serverSend(frame) {
      this.#dispatch('message', { data: JSON.stringify(frame) });
    }

    serverClose(code = 1006, reason = '') {
      if (this.readyState === 3) return;
      this.readyState = 3;
      this.#dispatch('close', { code, reason, wasClean: code !== 1006 });
    }

    serverFail(message = 'connect ECONNREFUSED') {
      this.#dispatch('error', { message });
      this.serverClose(1006, '');
    }

    /** Opens the socket and answers the hello with a welcome. */
    accept({ limits = {}, replica = 'fake', user = 'alice', space = 's' } = {}) {
      this.serverOpen();
      const hello = this.lastFrame('hello');
      this.serverSend({
        type: 'welcome',
        id: hello.id,
        replica,
        session: '1',
        user,
        space,
        limits: { max_message_bytes: 131072, max_batch: 1000, max_watches: 1000, ...limits },
      });
    }

    /** Answers a request frame. */
    answer(request, fields) {
      this.serverSend({ id: request.id, ...fields });
    }
  }

  return { FakeWebSocket, sockets };
}

export const tick = (ms = 0) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves when `predicate()` holds, polling; fails after `ms`. */
export async function until(predicate, ms = 2000, what = 'condition') {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await tick(2);
  }
}

export const SERVER_A = { id: 'sfu-a', url: 'wss://a.example/rtc', region: 'eu' };
export const SERVER_B = { id: 'sfu-b', url: 'wss://b.example/rtc', region: 'eu' };
