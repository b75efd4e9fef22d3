// A minimal event emitter that runs the same in browsers and Node (no `events` import, no
// DOM-only CustomEvent). Listeners get the event's detail object directly.

export class Emitter {
  #listeners = new Map();

  /** Adds a listener; returns a function that removes it. */
  on(type, listener) {
    if (typeof listener !== 'function') throw new TypeError('listener must be a function');
    let set = this.#listeners.get(type);
    if (!set) this.#listeners.set(type, (set = new Set()));
    set.add(listener);
    return () => this.off(type, listener);
  }

  off(type, listener) {
    this.#listeners.get(type)?.delete(listener);
  }

  /** Like on(), for one event only. */
  once(type, listener) {
    const off = this.on(type, (detail) => {
      off();
      listener(detail);
    });
    return off;
  }

  /**
   * Calls every listener of `type`. A listener that throws does not stop the others nor the
   * client's own processing: its exception is reported asynchronously, the way EventTarget
   * reports exceptions from DOM event listeners.
   */
  emit(type, detail) {
    const set = this.#listeners.get(type);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        listener(detail);
      } catch (err) {
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }
}
