// Small pure helpers, kept apart so the unit tests can check them without a socket.

/**
 * "Full jitter" exponential backoff: a delay drawn uniformly from [0, min(maxMs, baseMs * 2^attempt)).
 * Spreading every reconnect over the whole window (rather than around its end) is what keeps a
 * fleet of clients that lost the same replica from arriving at the next one in lockstep.
 */
export function fullJitterDelay(attempt, { baseMs, maxMs }, random = Math.random) {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}

const encoder = new TextEncoder();

export function utf8Length(text) {
  return encoder.encode(text).length;
}

// PROTOCOL.md §4: ids are 1 to 128 bytes of UTF-8 without control characters (U+0000–U+001F,
// U+007F). Checked locally so one bad id cannot get a whole coalesced batch refused.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

export function isValidId(id) {
  if (typeof id !== 'string' || id.length === 0 || CONTROL.test(id)) return false;
  return utf8Length(id) <= 128;
}

/** Bytes of a lookup/watch/unwatch frame besides its ids: {"type":"unwatch","id":<2^53>,"users":[]}. */
const FRAME_OVERHEAD_BYTES = 64;

/**
 * Splits ids into batches that respect the replica's limits (PROTOCOL.md §10): at most
 * `maxBatch` ids, and a frame of at most `maxMessageBytes` (1000 ids of 128 bytes would not fit
 * the default 131072 bytes, so the byte size matters too). Never returns an empty batch.
 */
export function chunkIds(ids, { maxBatch, maxMessageBytes }) {
  const chunks = [];
  let current = [];
  let bytes = FRAME_OVERHEAD_BYTES;
  for (const id of ids) {
    const size = utf8Length(JSON.stringify(id)) + 1; // the id, quoted and escaped, and a comma
    if (current.length > 0 && (current.length >= maxBatch || bytes + size > maxMessageBytes)) {
      chunks.push(current);
      current = [];
      bytes = FRAME_OVERHEAD_BYTES;
    }
    current.push(id);
    bytes += size;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}
