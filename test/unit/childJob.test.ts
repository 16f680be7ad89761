// The shared child side of the worker processes: progress throttled to one message per interval, the last step always.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { throttled } from '../../src/util/childJob';

test('throttled: at most one call per interval, and always the last step', () => {
  const realNow = Date.now;
  let now = 1_000_000;
  Date.now = () => now;
  try {
    const seen: number[] = [];
    const f = throttled((p: { done: number; total: number }) => seen.push(p.done), 250);
    for (const [t, done] of [[0, 1], [100, 2], [249, 3], [250, 4], [400, 5], [420, 10]]) {
      now = 1_000_000 + t;
      f({ done, total: 10 });
    }
    assert.deepEqual(seen, [1, 4, 10]); // 2 and 3 within 250 ms of 1, 5 within 250 ms of 4, 10 is the last step
  } finally {
    Date.now = realNow;
  }
});
