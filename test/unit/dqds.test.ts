// dqds (dqds.ts, dqdsStep.ts, dqdsShift.ts, dqdsSweep.ts): relative accuracy against 60-digit mpmath references on inputs that
// exercise the flip, split and shift cases, agreement with the QL route, and the sweep count through dqdsCounters
// (a shift strategy that is merely safe, not sharp, still gives right answers, so only the count catches it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bidiagonalizeBlocked } from '../../src/spectrum/bidiagKernel';
import { bidiagonalSingularValuesDqds, dqdsCounters } from '../../src/spectrum/dqds';
import { minNoBranch } from '../../src/spectrum/dqdsSweep';
import { tridiagonalEigenvalues } from '../../src/spectrum/linalg';
import { gaussian } from './spectrumTestUtil';

const EPS = 2.220446049250313e-16;

function dqds(d: ArrayLike<number>, e: ArrayLike<number>): Float64Array {
  const s = bidiagonalSingularValuesDqds(d, e);
  assert.ok(s, 'dqds did not decline');
  return s;
}

/** σ of the bidiagonal through QL on the 2n×2n Golub–Kahan tridiagonal (absolute accuracy ≈ eps·σ_max). */
function viaQl(d: ArrayLike<number>, e: ArrayLike<number>): Float64Array {
  const n = d.length;
  const off = new Float64Array(2 * n - 1);
  for (let i = 0; i < n; i++) {
    off[2 * i] = d[i];
    if (i < n - 1) off[2 * i + 1] = e[i];
  }
  return tridiagonalEigenvalues(new Float64Array(2 * n), off).subarray(0, n);
}

test('dqds: a graded bidiagonal with its small end at the top (flipped first) keeps full relative accuracy', () => {
  // The reversal of the graded matrix of spectrumWasm.test.ts (d_i = 10^(−i/4), e_i = 10^(−i/4 − 1/2), n = 60) has the
  // same σ (it is J·Bᵀ·J): 60-digit mpmath references. A shift that ignores where d_min occurred lost 3 digits here.
  const n = 60;
  const d = Float64Array.from({ length: n }, (_, i) => 10 ** (-(n - 1 - i) / 4));
  const e = Float64Array.from({ length: n - 1 }, (_, i) => 10 ** (-(n - 2 - i) / 4 - 0.5));
  const s = dqds(d, e);
  const ref: [number, number][] = [[0, 1.06774150330428], [57, 5.623405744734245e-15], [58, 3.158798679124834e-15], [59, 1.6498114223732287e-15]];
  for (const [i, want] of ref) assert.ok(Math.abs(s[i] - want) <= 1e-13 * want, `σ${i} = ${s[i]} vs ${want}`);
});

test('dqds: σ spanning 50 decades (exact dyadic entries) match a 60-digit mpmath SVD to a few ulps each', () => {
  // d_i = (1 + (i mod 5)/8)·2^(3((7i mod 31) − 15)), e_i = (1 + (i mod 3)/4)·2^(3((11i + 5 mod 29) − 14)), n = 24.
  const n = 24;
  const d = Float64Array.from({ length: n }, (_, i) => (1 + (i % 5) / 8) * 2 ** (3 * (((7 * i) % 31) - 15)));
  const e = Float64Array.from({ length: n - 1 }, (_, i) => (1 + (i % 3) / 4) * 2 ** (3 * (((11 * i + 5) % 29) - 14)));
  const ref = [
    4.398046511104e13, 6.0473139527683636e12, 5.49755813888e12, 8.2463372083207878e11, 8.246337208320651e11, 1.0737418240001758e10,
    8.589934592001236e9, 1.9952899715569423e9, 3.1457280000000651e7, 2.6214399999998424e6, 5.12e2, 4.7356166347071683e2, 8.0e1,
    4.8000006208815769, 1.5, 2.746581935568169e-4, 5.722045158288965e-6, 1.0244548320770264e-8, 7.4505805969780385e-9,
    1.1704521129540955e-10, 2.5242574464722153e-12, 9.6683419868188785e-19, 1.3071138527268747e-19, 1.0800941462353105e-37,
  ];
  const s = dqds(d, e);
  for (let i = 0; i < n; i++) assert.ok(Math.abs(s[i] - ref[i]) <= 16 * EPS * ref[i], `σ${i} = ${s[i]} vs ${ref[i]}`);
});

test('dqds: negligible off-diagonals inside a block split it, and the 2×2 and 3×3 blocks left over are exact', () => {
  // tridiag blocks glued by e = 1e−14 (not exact zeros, so the caller does not split them): the glue moves σ by
  // far less than an ulp, so the σ are those of the separate blocks, here checked against the QL route per block.
  const blocks: [number[], number[]][] = [[[3, 1, 2], [0.5, 0.25]], [[1e-3, 2e-3], [1e-3]], [[7, 5, 3, 1, 0.5], [1, 1, 1, 1]], [[2, 2, 2], [1, 1]]];
  const d: number[] = [];
  const e: number[] = [];
  const want: [number, number][] = []; // [σ, its block's σ_max: the QL route's accuracy is absolute per block]
  for (const [bd, be] of blocks) {
    if (d.length) e.push(1e-14);
    d.push(...bd);
    e.push(...be);
    const ql = viaQl(bd, be);
    for (const x of ql) want.push([x, ql[0]]);
  }
  want.sort((a, b) => b[0] - a[0]);
  const s = dqds(d, e);
  for (const [i, [w, top]] of want.entries()) assert.ok(Math.abs(s[i] - w) <= 16 * EPS * top, `σ${i} = ${s[i]} vs ${w}`);
  // Single 2×2 and 3×3 bidiagonals (closed form of the 2×2 Gram eigenvalues, and the shortest block dqds sweeps).
  const two = dqds([3, 4], [2]);
  const t = 9 + 4 + 16;
  const det = 3 * 4;
  assert.ok(Math.abs(two[0] ** 2 - (t + Math.sqrt(t * t - 4 * det * det)) / 2) <= 8 * EPS * t, `2×2 σ0 ${two[0]}`);
  assert.ok(Math.abs(two[0] * two[1] - det) <= 8 * EPS * det, `2×2 σ0·σ1 = |det| ${two[0] * two[1]}`);
  const three = dqds([1, 2, 3], [1, 1]);
  const ql3 = viaQl([1, 2, 3], [1, 1]);
  for (let i = 0; i < 3; i++) assert.ok(Math.abs(three[i] - ql3[i]) <= 16 * EPS * ql3[0], `3×3 σ${i}`);
});

test('dqds: random reductions agree with the QL route, in at most 4.2 sweeps per value and 2.3·n² row updates', () => {
  // dqds with LAPACK's shift strategy takes about 3.8 sweeps per value on these (2.05·n² row updates); the earlier
  // ad hoc shift took 4.8 (2.65·n²), and a shift that stays at zero takes hundreds.
  for (const m of [64, 256]) {
    const { d, e } = bidiagonalizeBlocked(gaussian(m * m, m + 3), m, m);
    const before = { ...dqdsCounters };
    const s = dqds(d, e);
    const sweeps = dqdsCounters.sweeps - before.sweeps;
    const steps = dqdsCounters.steps - before.steps;
    const ql = viaQl(d, e);
    for (let i = 0; i < m; i++) assert.ok(Math.abs(s[i] - ql[i]) <= 8 * m * EPS * ql[0], `${m}: σ${i} ${s[i]} vs QL ${ql[i]}`);
    assert.ok(sweeps <= 4.2 * m, `${m}: ${sweeps / m} sweeps per value`);
    assert.ok(steps <= 2.3 * m * m, `${m}: ${steps / (m * m)}·n² row updates`);
  }
});

test('dqds: a Wilkinson-like bidiagonal (pairs of equal σ) through the hidden-convergence and unshifted-sweep paths', () => {
  // d_i = |60 − i| + 1, e_i = 1, n = 120: σ come in pairs equal to 17 digits, which makes shifted sweeps fail and
  // takes the careful unshifted sweep (dlasq6) twice. References: mpmath svd_r at 40 digits.
  const n = 120;
  const d = Float64Array.from({ length: n }, (_, i) => Math.abs(n / 2 - i) + 1);
  const e = new Float64Array(n - 1).fill(1);
  const s = dqds(d, e);
  const ref: [number, number][] = [[0, 61.227480878554663], [1, 60.227515215320628], [59, 31.008066089454558], [60, 31.008066089454558], [118, 1.97916741854635], [119, 0.74922509683265553]];
  for (const [i, want] of ref) assert.ok(Math.abs(s[i] - want) <= 8 * EPS * want, `σ${i} = ${s[i]} vs ${want}`);
  const ql = viaQl(d, e);
  for (let i = 0; i < n; i++) assert.ok(Math.abs(s[i] - ql[i]) <= 16 * n * EPS * ql[0], `σ${i} ${s[i]} vs QL ${ql[i]}`);
});

test('dqds: one small diagonal near the top makes the block flip before iterating (mpmath references)', () => {
  // d = 2 except d_2 = 1e−3, e = 1, n = 100: the smallest d of an unshifted pass sits in the top third, so the
  // block is reversed (dlasq2's aggressive flip) to converge at its small end. References: mpmath svd_r, 40 digits.
  const n = 100;
  const d = Float64Array.from({ length: n }, (_, i) => (i === 2 ? 1e-3 : 2));
  const s = dqds(d, new Float64Array(n - 1).fill(1));
  const ref: [number, number][] = [[0, 2.9996574579117961], [1, 2.9986299489956707], [50, 2.2072140118331985], [97, 1.0041008062211455], [98, 1.0010270401998094], [99, 0.00075592890337960064]];
  for (const [i, want] of ref) assert.ok(Math.abs(s[i] - want) <= 8 * EPS * want, `σ${i} = ${s[i]} vs ${want}`);
});

test('dqds sweeps: the branch-free minimum is Math.min, bit for bit, wherever the sweeps use it (b not −0, no NaN)', () => {
  const as = [0, -0, 1, -1, 2.5, 1 + EPS, 1e-300, 5e-324, -5e-324, 1e300, Infinity, -Infinity];
  const bs = as.filter((b) => !Object.is(b, -0));
  for (const a of as) for (const b of bs) assert.ok(Object.is(minNoBranch(a, b), Math.min(a, b)), `min(${a}, ${b})`);
  const g = gaussian(2000, 5);
  for (let i = 0; i < 2000; i += 2) {
    const a = g[i];
    const b = i % 3 === 0 ? a : g[i + 1];
    assert.ok(Object.is(minNoBranch(a, b), Math.min(a, b)), `min(${a}, ${b})`);
  }
  // The two cases it leaves to its callers: the sweeps form no −0 where they use it and restore a NaN afterwards.
  assert.ok(Object.is(minNoBranch(0, -0), 0));
  assert.equal(minNoBranch(1, NaN), 1);
});
