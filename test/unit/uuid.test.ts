import { test } from 'node:test';
import assert from 'node:assert/strict';
import { charAccuracy, makeUuidPairs, parseUuidSpec, scoreUuid, uuidRecords } from '../../src/trainer/uuid';

test('UUID pairs are deterministic per seed, well-formed and distinct', () => {
  const a = makeUuidPairs(50, 42);
  assert.deepEqual(makeUuidPairs(50, 42), a);
  assert.notDeepEqual(makeUuidPairs(50, 43), a);
  // A prefix of a larger task is the smaller task: uuid:10 ⊂ uuid:50 with the same seed.
  assert.deepEqual(makeUuidPairs(10, 42), a.slice(0, 10));
  const re = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
  for (const p of a) {
    assert.match(p.key, re);
    assert.match(p.value, re);
  }
  assert.equal(new Set(a.map((p) => p.key)).size, 50);
  // Golden first pair pins the generator so data sets stay identical across versions.
  assert.deepEqual(a[0], GOLDEN);
  assert.deepEqual(uuidRecords(a.slice(0, 1))[0], { prompt: `${GOLDEN.key}:`, completion: GOLDEN.value, source: 'uuid' });
});

test('uuid:N spec parsing', () => {
  assert.equal(parseUuidSpec('uuid:100'), 100);
  assert.equal(parseUuidSpec('uuid:0'), undefined);
  assert.equal(parseUuidSpec('uuid:x'), undefined);
  assert.equal(parseUuidSpec('data.jsonl'), undefined);
});

test('character-level accuracy and exact match', () => {
  assert.equal(charAccuracy('abcd', 'abcd'), 1);
  assert.equal(charAccuracy('abxd', 'abcd'), 0.75);
  assert.equal(charAccuracy('ab', 'abcd'), 0.5);
  assert.equal(charAccuracy('abcdzzz', 'abcd'), 1);
  assert.equal(charAccuracy('', 'abcd'), 0);
  const pairs = [{ key: 'k1', value: 'abcd' }, { key: 'k2', value: 'wxyz' }];
  const s = scoreUuid(pairs, ['abcd\n', 'wxzz']);
  assert.equal(s.charAccuracy, (1 + 0.75) / 2);
  assert.equal(s.exactMatch, 0.5);
  assert.equal(s.n, 2);
  assert.throws(() => scoreUuid(pairs, ['x']));
});

const GOLDEN = { key: '97da2849-d73e-4438-a907-d090402c802d', value: '7c570089-3a34-4d83-841a-abe1f6f21057' };
