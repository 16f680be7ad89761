import { test } from 'node:test';
import assert from 'node:assert/strict';
import { effectiveRank, energyTopK, spectrumMetrics, stableRank } from '../../src/spectrum/metrics';
import { randomizedSvd } from '../../src/spectrum/dense';
import { intrudersFromVectors, intruderDimensions } from '../../src/spectrum/intruder';
import { qr } from '../../src/spectrum/factor';
import { singularValues } from '../../src/spectrum/linalg';
import { mulberry, randn } from '../../src/spectrum/random';

const near = (a: number, b: number, tol: number, what: string): void => assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b}`);

test('metrics of σ = [4, 2, 2, 0] are exact', () => {
  const m = spectrumMetrics([4, 2, 2, 0], { rows: 4, cols: 6, topK: 1, threshold: 2 });
  assert.equal(m.sigmaMax, 4);
  near(m.frobenius, Math.sqrt(24), 1e-15, 'frobenius');
  near(m.stableRank, 1.5, 1e-15, 'stable rank'); // 24 / 16
  near(m.effectiveRank, 2 ** 1.5, 1e-14, 'effective rank'); // p = [1/2, 1/4, 1/4]: H = 1.5 ln 2
  near(m.energyTopK, 2 / 3, 1e-15, 'energy top-1'); // 16 / 24
  assert.equal(m.countAbove, 1); // strictly above 2
  assert.equal(m.numericalRank, 3);
  near(m.rankTol, 6 * 2.220446049250313e-16 * 4, 1e-30, 'default rank tolerance');
  assert.equal(spectrumMetrics([4, 2, 2, 0], { rows: 4, cols: 6 }).countAbove, 3); // default threshold 0.1
  near(energyTopK([4, 2, 2, 0], 2), 20 / 24, 1e-15, 'energy top-2');
});

test('flat spectra have effective and stable rank n; ΔW = 0 gives zeros; tolerance decides numerical rank', () => {
  near(effectiveRank([0.3, 0.3, 0.3, 0.3, 0.3]), 5, 1e-13, 'erank');
  near(stableRank([0.3, 0.3, 0.3, 0.3, 0.3]), 5, 1e-13, 'stable');
  const z = spectrumMetrics([0, 0, 0], { rows: 3, cols: 3 });
  assert.deepEqual([z.effectiveRank, z.stableRank, z.energyTopK, z.numericalRank, z.countAbove], [0, 0, 0, 0, 0]);
  assert.equal(spectrumMetrics([1, 1e-3, 1e-9], { rows: 3, cols: 3, rankTol: 1e-6 }).numericalRank, 2);
});

/** A = U diag(s) Vᵀ with random orthonormal U [m, p], V [n, p]. */
function withSpectrum(s: number[], m: number, n: number, seed: number): Float64Array {
  const rnd = mulberry(seed);
  const p = s.length;
  const U = qr(Float64Array.from({ length: m * p }, () => randn(rnd)), m, p).q!;
  const V = qr(Float64Array.from({ length: n * p }, () => randn(rnd)), n, p).q!;
  const a = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) for (let t = 0; t < p; t++) a[i * n + j] += U[i * p + t] * s[t] * V[j * p + t];
  return a;
}

test('randomized top-k matches the exact spectrum, with valid error bounds and exact Frobenius norm', () => {
  const s = [10, 6, 3, 1, 0.5, 0.25, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002];
  const a = withSpectrum(s, 60, 40, 9);
  const top = randomizedSvd(a, 60, 40, 4, { oversample: 6, powerIters: 3 });
  near(top.frobenius, Math.sqrt(s.reduce((x, y) => x + y * y, 0)), 1e-12, 'frobenius');
  for (let i = 0; i < 4; i++) {
    near(top.s[i], s[i], 1e-9, `σ${i}`);
    assert.ok(top.s[i] <= s[i] + 1e-12 && s[i] <= top.upper[i] + 1e-12, `bounds ${i}`);
  }
  // Same numbers as the dense path.
  const dense = singularValues(a, 60, 40);
  for (let i = 0; i < 4; i++) near(top.s[i], dense[i], 1e-9, `dense ${i}`);
  // With l = 10 sketch columns nothing can capture more than the top 10, so the residual is at least the norm of the
  // last two σ (Eckart–Young), and a good sketch stays close to it.
  const tail = Math.hypot(0.005, 0.002);
  assert.ok(top.residual >= tail - 1e-9 && top.residual <= 1.01 * tail, `residual ${top.residual} vs ${tail}`);
});

test('intruder dimensions: a new dominant direction is one intruder, an amplified base direction is none', () => {
  const n = 20;
  const base = new Float64Array(n * n);
  [10, 9, 8, 7, 6].forEach((x, i) => (base[i * n + i] = x));
  for (let i = 5; i < n; i++) base[i * n + i] = 1;
  const newDir = Float64Array.from(base);
  newDir[15 * n + 15] += 19; // σ = 20 along e₁₅, orthogonal to every top base vector
  const r1 = intruderDimensions(base, newDir, n, n, { k: 5, kBase: 5, threshold: 0.5 });
  assert.equal(r1.count, 1);
  assert.deepEqual(r1.indices, [0]);
  near(r1.maxSimilarity[0], 0, 1e-5, 'cos of intruder');
  for (let j = 1; j < 5; j++) near(r1.maxSimilarity[j], 1, 1e-5, `cos ${j}`);
  const amplified = Float64Array.from(base);
  amplified[0] += 5;
  assert.equal(intruderDimensions(base, amplified, n, n, { k: 5, kBase: 5, threshold: 0.5 }).count, 0);
});

test('intruder threshold: a vector at 45° to a base vector (cos 0.707) is an intruder only for ε above 0.707', () => {
  const m = 3;
  const ft = Float64Array.from([Math.SQRT1_2, 0, Math.SQRT1_2]); // [3, 1]
  const base = Float64Array.from([1, 0, 0, 1, 0, 0]); // [3, 2]: e₀, e₁
  assert.equal(intrudersFromVectors(ft, 1, base, 2, m, 0.5).count, 0);
  assert.equal(intrudersFromVectors(ft, 1, base, 2, m, 0.8).count, 1);
});
