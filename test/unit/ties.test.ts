import { test } from 'node:test';
import assert from 'node:assert/strict';
import { kthLargestAbsBits, linearCombine, magnitudePrune, tiesCombine, TiesError } from '../../src/adapters/ties';

const f32 = (xs: number[]) => Float32Array.from(xs);
function near(actual: Float32Array, expected: number[], tol = 1e-6): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(actual[i] - expected[i]) <= tol, `[${i}] ${actual[i]} != ${expected[i]}`);
  }
}

// Three task tensors of six entries, worked by hand in the comments of each test.
const tasks = () => [
  f32([0.5, -1.0, 0.2, 0.0, 3.0, -0.1]),
  f32([-0.4, -0.5, 0.3, 1.0, -2.0, 0.2]),
  f32([0.1, 2.0, -0.6, -0.5, -2.0, 0.05]),
];
const weights = [1, 0.5, 2];

test('magnitudePrune keeps the floor(density·n) largest magnitudes, ties in index order', () => {
  // k = 3: |x| = .5 1 .2 0 3 .1 -> keep 3, 1, .5
  near(magnitudePrune(tasks()[0], 0.5), [0.5, -1, 0, 0, 3, 0]);
  // k = 3 with a tie at 2: both 2s are above the third value .6
  near(magnitudePrune(tasks()[2], 0.5), [0, 2, -0.6, 0, -2, 0]);
  // k = 2 among four equal magnitudes: the first two by index survive
  near(magnitudePrune(f32([1, -1, 1, -1]), 0.5), [1, -1, 0, 0]);
  near(magnitudePrune(f32([1, -2, 3]), 0), [0, 0, 0]);
  near(magnitudePrune(f32([1, -2, 3]), 1), [1, -2, 3]);
  // k = floor(0.4 * 3) = 1
  near(magnitudePrune(f32([1, -2, 3]), 0.4), [0, 0, 3]);
  assert.throws(() => magnitudePrune(f32([1]), -0.1), (e: unknown) => e instanceof TiesError && e.kind === 'BadDensity');
});

test('kthLargestAbsBits agrees with a sort on random data with repeats', () => {
  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  const x = new Float32Array(5000).map(() => Math.round((rnd() - 0.5) * 200) / 16);
  const sorted = Array.from(x, Math.abs).sort((a, b) => b - a);
  for (const k of [1, 2, 17, 1000, 2500, 4999, 5000]) {
    const bits = kthLargestAbsBits(x, k);
    const v = new Float32Array(new Uint32Array([bits]).buffer)[0];
    assert.equal(v, sorted[k - 1], `k=${k}`);
  }
});

test('linearCombine is the weighted sum of the unpruned tensors', () => {
  // e.g. [1] = 1·(-1) + .5·(-.5) + 2·2 = 2.75 ; [3] = 0 + .5·1 + 2·(-.5) = -0.5 ; [4] = 3 - 1 - 4 = -2
  near(linearCombine(tasks(), weights), [0.5, 2.75, -0.85, -0.5, -2, 0.1]);
});

test('tiesCombine (total): trim to density, elect the sign of the sum, disjoint weighted mean', () => {
  // trimmed (density .5): T1 = [.5,-1,0,0,3,0]  T2 = [0,-.5,0,1,-2,0]  T3 = [0,2,-.6,0,-2,0]
  // [0] vote +.5 -> only T1 agrees: 1·.5 / 1          = 0.5
  // [1] vote +.5 -> only T3 agrees: 2·2 / 1           = 4
  // [2] vote -.6 -> T3:             2·(-.6) / 1       = -1.2
  // [3] vote +1  -> T2:             .5·1 / 1          = 0.5
  // [4] vote -1  -> T2, T3:         (.5·-2 + 2·-2)/2  = -2.5
  // [5] vote 0 counts as +, nobody agrees (zeros have sign 0) -> 0
  near(tiesCombine(tasks(), weights, 0.5), [0.5, 4, -1.2, 0.5, -2.5, 0]);
});

test('tiesCombine (frequency) elects by the count of signs', () => {
  // [1] signs -,-,+ -> majority -, T1 and T2 agree: (1·-1 + .5·-.5)/2 = -0.625 ; others as with "total"
  near(tiesCombine(tasks(), weights, 0.5, 'frequency'), [0.5, -0.625, -1.2, 0.5, -2.5, 0]);
});

test('tiesCombine at density 1 with equal signs is the weighted mean; output may alias an input', () => {
  const a = f32([1, 2, -3]);
  const b = f32([3, 4, -1]);
  // (1·1 + 1·3)/2 = 2 ; (2+4)/2 = 3 ; (-3-1)/2 = -2
  const out = tiesCombine([a, b], [1, 1], 1, 'total', a);
  assert.equal(out, a);
  near(out, [2, 3, -2]);
  assert.throws(() => tiesCombine([f32([1])], [1], 1.5), (e: unknown) => e instanceof TiesError && e.kind === 'BadDensity');
  assert.throws(() => linearCombine([f32([1]), f32([1, 2])], [1, 1]), /differ in size/);
  assert.throws(() => linearCombine([f32([1])], [1, 2]), /weights/);
});
