// The root-free (Pal–Walker–Kahan) tridiagonal eigenvalue routine against closed forms, 50-digit mpmath references
// and the QL with square roots, and the Gram route it serves in the MoRA type 6 spectra.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { moraDeltaW } from '../../src/adapters';
import { singularValues, tridiagonalEigenvalues } from '../../src/spectrum/linalg';
import { moraSingularValues } from '../../src/spectrum/moraSpectrum';
import { mulberry, randn } from '../../src/spectrum/random';
import { eig2, tridiagonalEigenvaluesPwk } from '../../src/spectrum/tridiagEigen';

const EPS = 2.220446049250313e-16;

function pwk(d: ArrayLike<number>, e: ArrayLike<number>): Float64Array {
  const ev = tridiagonalEigenvaluesPwk(d, e);
  assert.ok(ev, 'PWK converged');
  return ev;
}

function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i] - want[i]) <= tol, `${what}[${i}]: ${got[i]} vs ${want[i]} (tol ${tol})`);
}

test('PWK: 1×1, 2×2 (closed form), diagonal and zero off-diagonals', () => {
  assert.deepEqual(Array.from(pwk([-3], [])), [-3]);
  assert.deepEqual(Array.from(pwk([], [])), []);
  // [[a, b], [b, c]]: (a + c)/2 ± √(((a − c)/2)² + b²)
  for (const [a, b, c] of [[2, 1, 2], [1, 1e-9, 1], [-5, 3, 7], [0, 1, 0], [1e-300, 1e-300, -1e-300], [1e300, 1e300, 1e300]]) {
    const h = (a - c) / 2;
    const r = Math.hypot(h, b);
    const want = [(a + c) / 2 + r, (a + c) / 2 - r];
    const scale = Math.max(Math.abs(a), Math.abs(b), Math.abs(c));
    assertClose(pwk([a, c], [b]), want, 4 * EPS * scale, `2×2 ${a},${b},${c}`);
    assertClose(eig2(a, b, c), want, 4 * EPS * scale, `eig2 ${a},${b},${c}`);
  }
  assert.deepEqual(Array.from(pwk([3, -7, 0, 0.5, 2], [0, 0, 0, 0])), [3, 2, 0.5, 0, -7]);
  // Zero off-diagonals split the matrix into blocks; one 2×2 block [[1, 2], [2, 1]] has eigenvalues 3 and −1.
  assertClose(pwk([5, 1, 1, -2], [0, 2, 0]), [5, 3, -1, -2], 4 * EPS * 5, 'split blocks');
});

test('PWK: tridiag(−1, 2, −1) and tridiag(1, 0, 1) have closed forms 2 − 2cos(kπ/(n+1)) and 2cos(kπ/(n+1)), at any scale', () => {
  const n = 300;
  const want = Float64Array.from({ length: n }, (_, k) => 2 - 2 * Math.cos(((n - k) * Math.PI) / (n + 1)));
  assertClose(pwk(new Float64Array(n).fill(2), new Float64Array(n - 1).fill(-1)), want, 16 * EPS * 4, 'second difference');
  const zeroDiag = Float64Array.from({ length: n }, (_, k) => 2 * Math.cos(((k + 1) * Math.PI) / (n + 1)));
  assertClose(pwk(new Float64Array(n), new Float64Array(n - 1).fill(1)), zeroDiag, 16 * EPS * 2, 'zero diagonal');
  // Far outside the range where e² is representable: the block is scaled by a power of two first.
  for (const s of [1e250, 1e-250]) {
    const got = pwk(new Float64Array(n).fill(2 * s), new Float64Array(n - 1).fill(-s));
    assertClose(got, want.map((x) => x * s), 16 * EPS * 4 * s, `scaled by ${s}`);
  }
});

test('PWK: Wilkinson W21+, three W21+ glued by 1e-8, and a graded matrix match 50-digit mpmath references', () => {
  // Reference: mpmath.eigsy at 50 digits.
  const d = Array.from({ length: 21 }, (_, i) => Math.abs(10 - i));
  const w = pwk(d, new Array(20).fill(1));
  const wRef = [10.746194182903393, 10.746194182903322, 9.2106786473613321, 9.2106786473049186];
  assertClose(w.subarray(0, 4), wRef, 8 * EPS * 11, 'W21+ top (a pair 7e-14 apart)');
  assert.ok(Math.abs(w[20] + 1.1254415221199842) <= 8 * EPS * 11, `W21+ min ${w[20]}`);
  const glue = [...new Array(20).fill(1), 1e-8, ...new Array(20).fill(1), 1e-8, ...new Array(20).fill(1)];
  const g = pwk([...d, ...d, ...d], glue);
  const gRef = [10.746194188940713, 10.746194188940677, 10.746194182903358, 10.746194182903358, 10.746194176866038, 10.746194176866002];
  assertClose(g.subarray(0, 6), gRef, 8 * EPS * 11, 'glued W21+ top');
  assert.ok(Math.abs(g[62] + 1.1254415221199842) <= 8 * EPS * 11, `glued min ${g[62]}`);
  // d_i = 4^−i, e_i = 4^−(i+1), n = 30: accuracy is absolute, ≈ eps·‖T‖, like the QL's.
  const n = 30;
  const gr = pwk(Array.from({ length: n }, (_, i) => 4 ** -i), Array.from({ length: n - 1 }, (_, i) => 4 ** -(i + 1)));
  assertClose([gr[0], gr[1]], [1.0760189070882904, 0.20042808872132245], 8 * EPS, 'graded top');
  assertClose([gr[28], gr[29]], [7.1435751140459858e-18, 1.2764514743499831e-18], 8 * EPS * 1.1, 'graded bottom (absolute)');
});

test('PWK agrees with the QL with square roots on random, Gram-like and rank-deficient tridiagonals', () => {
  const rnd = mulberry(11);
  for (const n of [3, 17, 100, 400]) {
    const d = Float64Array.from({ length: n }, () => randn(rnd));
    const e = Float64Array.from({ length: n - 1 }, () => randn(rnd));
    const ql = tridiagonalEigenvalues(d, e);
    assertClose(pwk(d, e), ql, 16 * n * EPS * Math.max(ql[0], -ql[n - 1]), `random ${n}`);
    // LLᵀ of a random lower bidiagonal with one zero pivot: positive semidefinite with an exact zero eigenvalue.
    const l = Float64Array.from({ length: n }, (_, i) => (i === n >> 1 ? 0 : randn(rnd)));
    const m = Float64Array.from({ length: n - 1 }, () => randn(rnd));
    const gd = Float64Array.from({ length: n }, (_, i) => l[i] ** 2 + (i > 0 ? m[i - 1] ** 2 : 0));
    const ge = Float64Array.from({ length: n - 1 }, (_, i) => l[i] * m[i]);
    const gq = tridiagonalEigenvalues(gd, ge);
    const gp = pwk(gd, ge);
    assertClose(gp, gq, 16 * n * EPS * gq[0], `Gram ${n}`);
    assert.ok(Math.abs(gp[n - 1]) <= 16 * n * EPS * gq[0], `zero eigenvalue ${gp[n - 1]}`);
  }
});

test('PWK: T with its small end at the bottom (run as QR, i.e. reversed) and T reversed agree bit for bit, through couplings that vanish mid-block', () => {
  // A large d[0] puts the small end at the bottom, so the block is reversed before the QL; passing T reversed runs
  // the same arithmetic directly. Couplings of 1e−9 every 17 rows
  // become negligible after a few sweeps, inside the block, so both deflate there (the hits the sweeps record).
  const rnd = mulberry(99);
  for (const n of [20, 59, 98]) {
    const d = Array.from({ length: n }, (_, i) => (i === 0 ? 10 : randn(rnd)));
    const e = Array.from({ length: n - 1 }, (_, i) => (i % 17 === 8 ? 1e-9 : 1) * randn(rnd));
    const qr = pwk(d, e);
    const ql = pwk([...d].reverse(), [...e].reverse());
    for (let i = 0; i < n; i++) assert.ok(Object.is(qr[i], ql[i]), `n ${n}, λ[${i}]: ${qr[i]} vs ${ql[i]}`);
    const ref = tridiagonalEigenvalues(d, e);
    assertClose(qr, ref, 16 * n * EPS * Math.max(ref[0], -ref[n - 1]), `n ${n} vs the QL with square roots`);
  }
});

test('MoRA type 6: a tiling-boundary chunk takes the Gram route only where a coupled block already set that tolerance', () => {
  const rnd = mulberry(5);
  const r = 40;
  const M = Float32Array.from({ length: r * r }, () => 0.02 * randn(rnd));
  // 230 → 610: chunk 5 is padded from chunk 0 (coupled block), and the weight changes from 3 to 2 inside chunk 3.
  const dense = singularValues(moraDeltaW(M, r, 230, 610, 6), 610, 230);
  const got = moraSingularValues(M, r, 230, 610, 6);
  assert.equal(got.sigma.length, 230);
  for (let i = 0; i < 230; i++) assert.ok(Math.abs(got.sigma[i] - dense[i]) <= 2e-6 * dense[0], `σ${i} ${got.sigma[i]} vs ${dense[i]}`);
  assert.ok(got.tolerance > 1e-9 * got.sigma[0], 'Gram-route tolerance reported');
  // 410 → 100: no coupled block survives the truncation (the padded chunk is never read), so the chunk cut by the
  // truncation keeps its bidiagonal SVD and the module its eps-level tolerance.
  const trunc = moraSingularValues(M, r, 410, 100, 6);
  const denseT = singularValues(moraDeltaW(M, r, 410, 100, 6), 100, 410);
  for (let i = 0; i < 100; i++) assert.ok(Math.abs(trunc.sigma[i] - denseT[i]) <= 2e-6 * denseT[0], `trunc σ${i}`);
  assert.ok(trunc.tolerance <= 1e3 * EPS * trunc.sigma[0], `tolerance ${trunc.tolerance / trunc.sigma[0]}`);
});

test('PWK: a block whose largest entry is subnormal is scaled up exactly, not by an overflowing 2^k', () => {
  // 2 − 2cos(kπ/(n+1)) times s; subnormals hold absolute, not relative, precision (spacing 2^−1074).
  const n = 40;
  const want = Float64Array.from({ length: n }, (_, k) => 2 - 2 * Math.cos(((n - k) * Math.PI) / (n + 1)));
  for (const s of [1e-300, 1e-310, 1e-315, 1e-320]) {
    const got = pwk(new Float64Array(n).fill(2 * s), new Float64Array(n - 1).fill(-s));
    assertClose(got, want.map((x) => x * s), 16 * EPS * 4 * s + 64 * 2 ** -1074, `scaled by ${s}`);
  }
  // A split-off 2×2 block of subnormals next to a zero diagonal: [[1e-310, 1e-310], [1e-310, 0]] ⊕ [0].
  const phi = (1 + Math.sqrt(5)) / 2;
  assertClose(pwk([1e-310, 0, 0], [1e-310, 0]), [phi * 1e-310, 0, (1 - phi) * 1e-310], 8 * 2 ** -1074, 'subnormal 2×2');
});
