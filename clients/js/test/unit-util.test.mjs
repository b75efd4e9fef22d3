// Pure helpers: backoff, batching, ids, the epoch rule, error mapping.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { VRouterError, fullJitterDelay } from '../src/index.js';
import { LocationTable } from '../src/locations.js';
import { chunkIds, isValidId } from '../src/util.js';

describe('fullJitterDelay', () => {
  const backoff = { baseMs: 100, maxMs: 1000 };

  it('draws from [0, min(max, base * 2^attempt))', () => {
    assert.equal(fullJitterDelay(0, backoff, () => 0), 0);
    assert.equal(fullJitterDelay(0, backoff, () => 0.5), 50);
    assert.equal(fullJitterDelay(1, backoff, () => 0.5), 100);
    assert.equal(fullJitterDelay(3, backoff, () => 0.5), 400);
    assert.equal(fullJitterDelay(4, backoff, () => 0.5), 500); // capped: min(1000, 1600) / 2
    assert.equal(fullJitterDelay(60, backoff, () => 0.999), 999); // no overflow for huge attempts
  });

  it('spreads over the whole window with the default random', () => {
    const draws = Array.from({ length: 2000 }, () => fullJitterDelay(2, backoff));
    assert.ok(draws.every((d) => d >= 0 && d < 400));
    assert.ok(Math.min(...draws) < 40 && Math.max(...draws) > 360, 'full jitter, not equal jitter');
  });
});

describe('chunkIds', () => {
  const limits = { maxBatch: 3, maxMessageBytes: 131072 };

  it('splits at max_batch and never returns an empty chunk', () => {
    assert.deepEqual(chunkIds(['a', 'b', 'c', 'd', 'e', 'f', 'g'], limits), [['a', 'b', 'c'], ['d', 'e', 'f'], ['g']]);
    assert.deepEqual(chunkIds([], limits), []);
  });

  it('keeps every frame under max_message_bytes, counting UTF-8 bytes', () => {
    const ids = Array.from({ length: 50 }, (_, i) => `${'é'.repeat(60)}${i}`); // ~122 bytes each
    const chunks = chunkIds(ids, { maxBatch: 1000, maxMessageBytes: 1024 });
    assert.ok(chunks.length > 1);
    assert.deepEqual(chunks.flat(), ids);
    for (const users of chunks) {
      const frame = JSON.stringify({ type: 'unwatch', id: Number.MAX_SAFE_INTEGER, users });
      assert.ok(new TextEncoder().encode(frame).length <= 1024);
    }
  });
});

describe('isValidId', () => {
  it('follows PROTOCOL.md §4', () => {
    assert.ok(isValidId('alice'));
    assert.ok(isValidId('x'.repeat(128)));
    assert.ok(!isValidId('x'.repeat(129)));
    assert.ok(!isValidId('é'.repeat(65))); // 130 bytes
    assert.ok(!isValidId(''));
    assert.ok(!isValidId('a\nb'));
    assert.ok(!isValidId('a\u007fb'));
    assert.ok(!isValidId(42));
  });
});

describe('LocationTable (epoch rule, PROTOCOL.md §7.3)', () => {
  const s1 = { id: 's1', url: 'u1', region: 'r' };
  const s2 = { id: 's2', url: 'u2', region: 'r' };

  it('ignores stale and duplicate pushes', () => {
    const t = new LocationTable();
    assert.equal(t.applySnapshot({ user: 'bob', server: null, epoch: 0 }), null);
    assert.deepEqual(t.applyMoved({ user: 'bob', server: s1, epoch: 5, from: null }), { user: 'bob', server: s1, epoch: 5, from: null });
    assert.equal(t.applyMoved({ user: 'bob', server: s1, epoch: 5, from: null }), null, 'duplicate');
    assert.equal(t.applyMoved({ user: 'bob', server: s2, epoch: 4, from: null }), null, 'older');
    assert.equal(t.applyLeft({ user: 'bob', epoch: 3 }), null, 'left of an older assignment');
    assert.deepEqual(t.applyLeft({ user: 'bob', epoch: 5 }), { user: 'bob', epoch: 5 });
    assert.equal(t.applyLeft({ user: 'bob', epoch: 5 }), null, 'already gone');
    assert.equal(t.applyMoved({ user: 'bob', server: s2, epoch: 4, from: null }), null, 'late push after left');
    assert.deepEqual(t.get('bob'), { user: 'bob', server: null, epoch: 0 });
  });

  it('turns a disagreeing snapshot into the missed event', () => {
    const t = new LocationTable();
    t.applySnapshot({ user: 'bob', server: s1, epoch: 5 });
    assert.equal(t.applySnapshot({ user: 'bob', server: s1, epoch: 5 }), null);
    assert.deepEqual(t.applySnapshot({ user: 'bob', server: s2, epoch: 9 }), {
      type: 'moved',
      event: { user: 'bob', server: s2, epoch: 9, from: 's1', resync: true },
    });
    assert.deepEqual(t.applySnapshot({ user: 'bob', server: null, epoch: 0 }), {
      type: 'left',
      event: { user: 'bob', epoch: 9, resync: true },
    });
    assert.equal(t.applyMoved({ user: 'bob', server: s2, epoch: 9, from: 's1' }), null, 'the push arrives late');
  });
});

describe('VRouterError', () => {
  it('maps router codes and their retryability (PROTOCOL.md §8)', () => {
    const e = VRouterError.fromFrame({ type: 'error', id: 3, code: 'unavailable', message: 'store down' }, 'join');
    assert.ok(e instanceof Error);
    assert.deepEqual([e.name, e.code, e.retryable, e.fromRouter, e.request, e.message], ['VRouterError', 'unavailable', true, true, 'join', 'store down']);
    assert.equal(VRouterError.fromFrame({ code: 'batch_too_large', message: '' }).retryable, false);
    assert.equal(VRouterError.fromFrame({ code: 'shutting_down', message: '' }).retryable, true);
    assert.equal(VRouterError.fromFrame({ code: 'brand_new_code', message: '' }).retryable, false, 'unknown codes are not retryable');
    assert.equal(new VRouterError('timeout', 'x').retryable, true);
    assert.equal(new VRouterError('session_replaced', 'x').retryable, false);
  });
});
