import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  singularValues,
  symmetricEigenvalues,
  tridiagonalEigenvalues,
  bidiagonalSingularValues,
  LinalgError,
} from '../../src/spectrum/linalg';
import { qr, svdJacobi, matMul } from '../../src/spectrum/factor';
import { mulberry, randn } from '../../src/spectrum/random';

function hilbert(n: number): Float64Array {
  const h = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) h[i * n + j] = 1 / (i + j + 1);
  return h;
}

// Reference values from LAPACK (numpy.linalg.svd) on the 5×5 Hilbert matrix, which is SPD so σ = λ.
const HILBERT5 = [1.5670506910982309, 0.2085342186110134, 0.011407491623419804, 3.0589804015118606e-4, 3.2879287721716928e-6];

function close(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(actual[i] - expected[i]) <= tol, `${what}[${i}]: ${actual[i]} vs ${expected[i]} (tol ${tol})`);
  }
}

test('Hilbert 5×5: eigenvalues, bidiagonal SVD and Jacobi SVD match LAPACK to 1e-12', () => {
  close(symmetricEigenvalues(hilbert(5), 5), HILBERT5, 1e-12, 'eig');
  close(singularValues(hilbert(5), 5, 5), HILBERT5, 1e-12, 'svd');
  close(svdJacobi(hilbert(5), 5, 5).s, HILBERT5, 1e-12, 'jacobi');
  // Jacobi is relatively accurate: even the 3e-6 value carries ~12 significant digits.
  assert.ok(Math.abs(svdJacobi(hilbert(5), 5, 5).s[4] / HILBERT5[4] - 1) < 1e-9);
});

test('diagonal matrices: singular values are the sorted |d|, eigenvalues the sorted d', () => {
  const d = [3, -7, 0, 0.5, 2];
  const a = new Float64Array(25);
  d.forEach((x, i) => (a[i * 5 + i] = x));
  close(singularValues(a, 5, 5), [7, 3, 2, 0.5, 0], 1e-15, 'svd');
  close(symmetricEigenvalues(a, 5), [3, 2, 0.5, 0, -7], 1e-15, 'eig');
  close(tridiagonalEigenvalues([1, 1], [0]), [1, 1], 0, 'split');
});

test('orthogonal matrix (Householder reflector and rotation): all singular values are 1', () => {
  const rnd = mulberry(7);
  const n = 9;
  const v = Float64Array.from({ length: n }, () => randn(rnd));
  const vv = v.reduce((s, x) => s + x * x, 0);
  const h = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) h[i * n + j] = (i === j ? 1 : 0) - (2 * v[i] * v[j]) / vv;
  close(singularValues(h, n, n), new Array(n).fill(1), 1e-14, 'reflector');
  const c = Math.cos(0.3);
  const s = Math.sin(0.3);
  close(singularValues([c, -s, s, c], 2, 2), [1, 1], 1e-15, 'rotation');
  const eig = symmetricEigenvalues(h, n); // a reflector has eigenvalues 1 (n−1 times) and −1
  close(eig, [...new Array(n - 1).fill(1), -1], 1e-14, 'reflector eig');
});

test('rectangular and rank-deficient matrices match LAPACK; exact zeros stay at eps level', () => {
  const a = [1, 2, 3, 4, 5, 6, 7, 8, 10, 1, 0, 1];
  const ref = [17.45089558463664, 0.9869391657365876, 0.7015656613921292];
  close(singularValues(a, 4, 3), ref, 1e-13, 'tall');
  close(singularValues(Float64Array.from([1, 4, 7, 1, 2, 5, 8, 0, 3, 6, 10, 1]), 3, 4), ref, 1e-13, 'wide');
  // Rank 2: the outer-product sum u1 v1ᵀ·3 + u2 v2ᵀ·0.5 of orthonormal vectors in 6×5.
  const rnd = mulberry(3);
  const g = Float64Array.from({ length: 30 }, () => randn(rnd));
  const { q } = qr(g, 6, 5);
  const h = Float64Array.from({ length: 25 }, () => randn(rnd));
  const { q: w } = qr(h, 5, 5);
  const m = new Float64Array(30);
  for (let i = 0; i < 6; i++) for (let j = 0; j < 5; j++) m[i * 5 + j] = 3 * q![i * 5] * w![j * 5] + 0.5 * q![i * 5 + 1] * w![j * 5 + 1];
  const s = singularValues(m, 6, 5);
  close(s.subarray(0, 2), [3, 0.5], 1e-14, 'rank-2 head');
  for (let i = 2; i < 5; i++) assert.ok(s[i] < 1e-14, `zero singular value ${i} = ${s[i]}`);
});

test('bidiagonal route agrees with one-sided Jacobi on random 40×25 and 25×40 matrices', () => {
  const rnd = mulberry(11);
  const a = Float64Array.from({ length: 1000 }, () => randn(rnd));
  const ref = svdJacobi(a, 40, 25).s;
  close(singularValues(a, 40, 25), ref, 1e-12, 'tall');
  close(singularValues(a, 25, 40), svdJacobi(a, 25, 40).s, 1e-12, 'wide');
  close(bidiagonalSingularValues([2], []), [2], 0, '1×1');
});

test('Jacobi SVD reconstructs A = U diag(s) Vᵀ and QR reconstructs A = QR with orthonormal Q', () => {
  const rnd = mulberry(5);
  const a = Float64Array.from({ length: 7 * 4 }, () => randn(rnd));
  const { u, s, v } = svdJacobi(a, 7, 4);
  const us = Float64Array.from(u, (x, i) => x * s[i % 4]);
  const vt = new Float64Array(16);
  for (let i = 0; i < 4; i++) for (let j = 0; j < 4; j++) vt[i * 4 + j] = v[j * 4 + i];
  close(matMul(us, vt, 7, 4, 4), a, 1e-13, 'USVᵀ');
  const { q, r } = qr(a, 7, 4);
  close(matMul(q!, r, 7, 4, 4), a, 1e-13, 'QR');
  const qtq = new Float64Array(16);
  for (let i = 0; i < 4; i++) for (let j = 0; j < 4; j++) for (let t = 0; t < 7; t++) qtq[i * 4 + j] += q![t * 4 + i] * q![t * 4 + j];
  close(qtq, [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1], 1e-14, 'QᵀQ');
});

test('shape errors are named LinalgError BadShape', () => {
  assert.throws(() => singularValues([1, 2, 3], 2, 2), (e: unknown) => e instanceof LinalgError && e.kind === 'BadShape');
});

test('a large rank-deficient matrix (rank 12 of 300) converges; its null part stays at eps level', () => {
  // Regression: the long run of rounding-noise entries a rank-deficient reduction leaves used to stall QL.
  const rnd = mulberry(21);
  const n = 300;
  const k = 12;
  const u = Float64Array.from({ length: n * k }, () => randn(rnd));
  const w = Float64Array.from({ length: k * n }, () => randn(rnd));
  const a = matMul(u, w, n, k, n);
  const s = singularValues(a, n, n);
  // σ of U·W equals σ(R_U · R_Wᵀ) from two thin QRs: an independent route.
  const ru = qr(u, n, k, false).r;
  const rw = qr(Float64Array.from({ length: n * k }, (_, i) => w[(i % k) * n + Math.floor(i / k)]), n, k, false).r;
  const rwt = Float64Array.from({ length: k * k }, (_, i) => rw[(i % k) * k + Math.floor(i / k)]);
  const ref = svdJacobi(matMul(ru, rwt, k, k, k), k, k).s;
  close(s.subarray(0, k), ref, 1e-10 * ref[0], 'rank part');
  for (let i = k; i < n; i++) assert.ok(s[i] <= 1e-12 * s[0], `σ${i} = ${s[i]}`);
});

test('tiny matrices (entries ~1e-170, whose squares underflow) keep exact relative spectra', () => {
  // Regression: rank-deficient reductions shrink their trailing noise geometrically to this range, and a reflector
  // that squared it produced Infinity and then NaN.
  const rnd = mulberry(4);
  const a = Float64Array.from({ length: 12 * 9 }, () => randn(rnd));
  const ref = singularValues(a, 12, 9);
  const tiny = singularValues(Float64Array.from(a, (x) => x * 1e-170), 12, 9);
  close(Float64Array.from(tiny, (x) => x * 1e170), ref, 1e-12 * ref[0], 'scaled σ');
  const sym = Float64Array.from({ length: 81 }, (_, i) => (a[i] + a[Math.floor(i / 9) + 9 * (i % 9)]) * 1e-170);
  assert.ok(symmetricEigenvalues(sym, 9).every(Number.isFinite));
  assert.ok(qr(Float64Array.from(a, (x) => x * 1e-170), 12, 9).q!.every(Number.isFinite));
});
