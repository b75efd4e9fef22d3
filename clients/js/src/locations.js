// Where each watched user is, merged by epoch as PROTOCOL.md §7.3 prescribes. Pushes can arrive
// late, twice or (rarely) out of order, and after a reconnect the new `watch_result` is the only
// truth; this table turns all of that into a clean sequence of `moved`/`left` events.

export class LocationTable {
  /** user -> {server: Server|null, epoch}; `epoch` is the highest epoch seen about the user. */
  #entries = new Map();

  get(user) {
    const entry = this.#entries.get(user);
    return entry ? { user, server: entry.server, epoch: entry.server ? entry.epoch : 0 } : undefined;
  }

  delete(user) {
    this.#entries.delete(user);
  }

  /** A `moved` push. Returns the event to emit, or null when it tells nothing new. */
  applyMoved(push) {
    const entry = this.#entries.get(push.user);
    if (entry && push.epoch <= entry.epoch) return null; // duplicate or stale
    this.#entries.set(push.user, { server: push.server, epoch: push.epoch });
    return { user: push.user, server: push.server, epoch: push.epoch, from: push.from ?? null };
  }

  /** A `left` push. Returns the event to emit, or null. */
  applyLeft(push) {
    const entry = this.#entries.get(push.user);
    if (entry && push.epoch < entry.epoch) return null; // the user has a newer assignment
    this.#entries.set(push.user, { server: null, epoch: Math.max(push.epoch, entry?.epoch ?? 0) });
    if (entry && !entry.server) return null; // already known to be gone
    return { user: push.user, epoch: push.epoch };
  }

  /**
   * One entry of a `watch_result` (or `lookup_result`). The first snapshot of a user is a
   * baseline and emits nothing; a later one that disagrees with what the table knew (a push lost
   * while the connection was down) returns the `moved` or `left` event the client missed, marked
   * `resync: true`.
   */
  applySnapshot(location) {
    const { user, server, epoch } = location;
    const entry = this.#entries.get(user);
    if (!entry) {
      this.#entries.set(user, { server, epoch: server ? epoch : 0 });
      return null;
    }
    if (server) {
      if (epoch <= entry.epoch) return null;
      const from = entry.server?.id ?? null;
      this.#entries.set(user, { server, epoch });
      if (from === server.id) return null; // same server, new epoch: nothing to tell (§7.8)
      return { type: 'moved', event: { user, server, epoch, from, resync: true } };
    }
    // No assignment now. Keep the highest epoch so that late pushes of older epochs stay ignored.
    if (!entry.server) return null;
    const ended = entry.epoch;
    this.#entries.set(user, { server: null, epoch: entry.epoch });
    return { type: 'left', event: { user, epoch: ended, resync: true } };
  }
}
