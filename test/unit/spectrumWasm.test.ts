// The WASM SIMD kernels must do exactly what their JS twins do: same operations in the same order, so every
// result is bit-identical (Object.is on every entry). Sizes are chosen to hit the awkward paths: odd lengths, odd
// start columns (unaligned f64x2 pairs), partial 4×4 blocks, m ≠ n, rank-deficient inputs, and an arena that has to
// grow between calls. dqds is checked against a 60-digit reference, a closed form and the QL route.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bidiagonalizeBlocked } from '../../src/spectrum/bidiagKernel';
import { denseKernels, jsKernels, setDenseKernels, type DenseKernels } from '../../src/spectrum/denseKernels';
import { bidiagonalSingularValuesDqds } from '../../src/spectrum/dqds';
import { packStrided } from '../../src/spectrum/gemmKernel';
import { weightedGram } from '../../src/spectrum/gramBlock';
import { bidiagonalSingularValues, singularValues, symmetricEigenvalues, tridiagonalEigenvalues } from '../../src/spectrum/linalg';
import { moraSingularValues } from '../../src/spectrum/moraSpectrum';
import { tridiagonalizeBlocked } from '../../src/spectrum/tridiagKernel';
import { wasmSimdSupported } from '../../src/util/wasm';
import { assertIdentical, gaussian, withKernels } from './spectrumTestUtil';

test('this engine has WASM SIMD, and the switch selects either implementation', () => {
  assert.equal(wasmSimdSupported(), true);
  assert.equal(setDenseKernels('js'), 'js');
  assert.equal(denseKernels(), jsKernels);
  assert.equal(setDenseKernels('wasm'), 'wasm');
  assert.equal(denseKernels().name, 'wasm');
  // A working set past the wasm limit (here 2^28 doubles = 2 GiB) takes the JS kernels instead of failing.
  assert.equal(denseKernels([1 << 27, 1 << 27]), jsKernels);
  assert.equal(denseKernels([1 << 20]).name, 'wasm');
  setDenseKernels('auto');
});

/** Copies `data` into fresh buffers of `k` (arena views for wasm) and returns them. */
function load(k: DenseKernels, data: Float64Array[]): Float64Array[] {
  const bufs = k.buffers(data.map((d) => d.length));
  bufs.forEach((b, i) => b.set(data[i]));
  return bufs;
}

test('wasm kernels refuse arrays outside the arena and views invalidated by a later buffers() call', () => {
  const wasm = withKernels('wasm', () => denseKernels());
  const [a, v, acc] = wasm.buffers([16, 4, 4]);
  assert.throws(() => wasm.atv(new Float64Array(16), 4, 0, 4, 0, 4, v, acc), RangeError);
  wasm.buffers([1 << 20]); // grows the memory: the earlier views are detached
  assert.throws(() => wasm.atv(a, 4, 0, 4, 0, 4, v, acc), RangeError);
});

test('each wasm kernel is bit-identical to its JS twin on awkward sizes and offsets', () => {
  const wasm = withKernels('wasm', () => denseKernels());
  for (const [m, n, r0, c0] of [[37, 29, 3, 5], [64, 64, 0, 0], [9, 50, 1, 1], [101, 7, 4, 2], [5, 5, 4, 4]]) {
    const A = gaussian(m * n, m * 100 + n);
    const v = gaussian(Math.max(m, n), 7);
    const acc = gaussian(Math.max(m, n), 8);
    const x = gaussian(m * 8, 9);
    const t1 = gaussian(8, 10);
    const t2 = gaussian(8, 11);
    const kk = 5; // depth of the packed rank-k update
    const padded = (rows: number) => new Float64Array(Math.ceil(rows / 4) * 4 * kk);
    const run = (k: DenseKernels) => {
      // One buffers() call: a later call would invalidate these views.
      const [a, vv, ac, xx, tt1, tt2, ac2, ac3, out, sym, ac4, c, cl, pa, pb] = load(k, [
        A, v, acc, x, t1, t2, acc, acc, new Float64Array(m * 8), A, acc, A, A, padded(m), padded(n),
      ]);
      k.atv(a, n, r0, m, c0, n, vv, ac);
      k.av(a, n, r0, m, c0, n, vv, xx, 3, 8);
      // The 8-wide row kernels need rows of at least 8 values (the panel always has them).
      const [w8, ld8] = n >= 8 ? [a, n] : [xx, 8];
      k.corr(w8, 0, ld8, xx, 0, 8, r0, m, tt1, tt2, ac2, 0, 1, 0.75);
      k.colsT(w8, 0, ld8, xx, 0, 8, r0, m, vv, tt1, tt2);
      k.corr(xx, 0, 8, xx, 0, 8, r0, m, tt1, tt2, out, 5, 8, 1);
      const sq = Math.min(m, n);
      k.symv(sym, n, Math.min(c0, sq), sq, vv, ac3);
      // Packed rank-k update, full and lower (square) forms, with partial 4×4 blocks at both edges.
      packStrided(pa, m, kk, 0, kk, xx, 0, 8, 1);
      packStrided(pb, n, kk, 0, kk, a, 0, 1, n);
      k.gemmSub(c, 0, n, m, n, kk, pa, pb);
      k.gemmSub(cl, 0, n, sq, sq, kk, pa, pb, true);
      return [ac, xx, ac2, tt1, tt2, out, ac3, c, cl, ac4].map((b) => Float64Array.from(b));
    };
    const got = run(wasm);
    const want = run(jsKernels);
    const names = ['atv', 'av', 'corr', 'colsT t1', 'colsT t2', 'corr (strided out)', 'symv', 'gemm', 'gemm lower', 'untouched'];
    got.forEach((g, i) => assertIdentical(g, want[i], `${m}×${n} ${names[i]}`));
  }
});

test('symv: wasm and JS bit-identical, and both (and wasm-fma) within rounding of a plain double loop, on every row-group shape', () => {
  // n − c0 = 1..13 covers four-row groups followed by nothing, a pair, a single row, or both; c0 odd and even moves
  // the f64x2 pairs off 16-byte alignment; lda > n leaves unread padding; c0 up to 9 puts 0..9 columns before the
  // first group's diagonal block.
  const wasm = withKernels('wasm', () => denseKernels());
  const fma = withKernels('wasm-fma', () => denseKernels());
  for (const c0 of [0, 1, 2, 5, 9]) {
    for (let len = 1; len <= 13; len++) {
      const n = c0 + len;
      const lda = n + 3;
      const A = gaussian(n * lda, 100 * c0 + len);
      const v = gaussian(n, 7);
      const acc0 = gaussian(n, 8);
      const run = (k: DenseKernels) => {
        const [a, vv, ac] = load(k, [A, v, acc0]);
        k.symv(a, lda, c0, n, vv, ac);
        return Float64Array.from(ac);
      };
      const got = run(wasm);
      assertIdentical(got, run(jsKernels), `symv c0 ${c0} n ${n}`);
      const fused = run(fma);
      // Reference: acc[i] += Σ_j A_sym[i, j]·v[j] over i, j in [c0, n), A_sym from the lower triangle.
      for (let i = 0; i < n; i++) {
        let want = acc0[i];
        let mag = Math.abs(acc0[i]);
        if (i >= c0) {
          for (let j = c0; j < n; j++) {
            const x = i >= j ? A[i * lda + j] : A[j * lda + i];
            want += x * v[j];
            mag += Math.abs(x * v[j]);
          }
        }
        assert.ok(Math.abs(got[i] - want) <= 1e-14 * mag, `symv c0 ${c0} n ${n} [${i}]: ${got[i]} vs ${want}`);
        assert.ok(Math.abs(fused[i] - want) <= 1e-14 * mag, `symv (fma) c0 ${c0} n ${n} [${i}]: ${fused[i]} vs ${want}`);
      }
    }
  }
});

test('blocked bidiagonalisation and tridiagonalisation: wasm and JS give bit-identical d and e', () => {
  // [m, n, rank (0 = full)]: just above the unblocked threshold, odd, n ≡ 2 (mod 8), tall, rank-deficient, 2^k.
  const cases: [number, number, number][] = [[49, 49, 0], [77, 53, 0], [101, 97, 0], [130, 130, 0], [200, 61, 0], [120, 100, 7], [256, 256, 0]];
  for (const [m, n, rank] of cases) {
    let a = gaussian(m * n, m + 7 * n);
    if (rank) {
      const u = gaussian(m * rank, 1);
      const w = gaussian(rank * n, 2);
      a = new Float64Array(m * n);
      for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) for (let t = 0; t < rank; t++) a[i * n + j] += u[i * rank + t] * w[t * n + j];
    }
    const s = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) s[i * n + j] = a[i * n + j] + a[j * n + i];
    const bw = withKernels('wasm', () => bidiagonalizeBlocked(Float64Array.from(a), m, n));
    const bj = withKernels('js', () => bidiagonalizeBlocked(Float64Array.from(a), m, n));
    assertIdentical(bw.d, bj.d, `bidiag ${m}×${n} d`);
    assertIdentical(bw.e, bj.e, `bidiag ${m}×${n} e`);
    const tw = withKernels('wasm', () => tridiagonalizeBlocked(Float64Array.from(s), n));
    const tj = withKernels('js', () => tridiagonalizeBlocked(Float64Array.from(s), n));
    assertIdentical(tw.d, tj.d, `tridiag ${n} d`);
    assertIdentical(tw.e, tj.e, `tridiag ${n} e`);
  }
});

test('singular values, eigenvalues and MoRA spectra are bit-identical under both kernels (arena grows between calls)', () => {
  const small = gaussian(60 * 50, 3);
  const big = gaussian(420 * 380, 4);
  const sym = gaussian(300 * 300, 5);
  const M = Float32Array.from(gaussian(40 * 40, 6));
  const run = () => [
    singularValues(small, 60, 50),
    singularValues(big, 420, 380), // grows the arena past the previous call's views
    singularValues(small, 50, 60),
    symmetricEigenvalues(sym, 300),
    moraSingularValues(M, 40, 230, 610, 6).sigma, // padding-coupled Gram block + tiling boundary
    moraSingularValues(M, 40, 230, 610, 1).sigma,
  ];
  const w = withKernels('wasm', run);
  const j = withKernels('js', run);
  w.forEach((x, i) => assertIdentical(x, j[i], `case ${i}`));
});

test('weightedGram: wasm and JS bit-identical when the arena holds NaN from before (its packed buffers are not zeroed)', () => {
  // [r, k]: r not a multiple of 4 (a partial packed block), k < r, and the LLaMA type 6 width.
  for (const [r, k] of [[41, 13], [40, 40], [37, 37], [348, 348]]) {
    const M = Float32Array.from(gaussian(r * r, r + k));
    const w = Float64Array.from(gaussian(k, 3), (x) => 1 + Math.abs(x));
    const dirty = () => denseKernels().buffers([4 * r * r + 2 * k * r + 64]).forEach((b) => b.fill(NaN));
    const gw = withKernels('wasm', () => (dirty(), [weightedGram(M, r, w, k), weightedGram(Array.from(M), r, w, k, true)]));
    const gj = withKernels('js', () => [weightedGram(M, r, w, k), weightedGram(Array.from(M), r, w, k, true)]);
    assertIdentical(gw[0], gj[0], `r=${r} k=${k}`);
    assertIdentical(gw[1], gj[1], `r=${r} k=${k} lower, from a plain array`);
    // And the plain definition Σ_p w_p·M(p, i)·M(p, j), within rounding.
    for (const [i, j] of [[0, 0], [r - 1, 0], [r - 1, r - 1], [r >> 1, r >> 2]]) {
      let want = 0;
      for (let p = 0; p < k; p++) want += w[p] * M[p * r + i] * M[p * r + j];
      assert.ok(Math.abs(gj[0][i * r + j] - want) <= 1e-12 * k, `r=${r} k=${k} [${i}, ${j}]: ${gj[0][i * r + j]} vs ${want}`);
    }
  }
});

test('dqds keeps full relative accuracy on a graded bidiagonal (60-digit reference)', () => {
  // d_i = 10^(−i/4), e_i = 10^(−i/4 − 1/2), n = 60: σ spans 15 decades. Reference: mpmath svd_r at 60 digits.
  const n = 60;
  const d = Float64Array.from({ length: n }, (_, i) => 10 ** (-i / 4));
  const e = Float64Array.from({ length: n - 1 }, (_, i) => 10 ** (-i / 4 - 0.5));
  const s = bidiagonalSingularValuesDqds(d, e)!;
  const ref: [number, number][] = [[0, 1.06774150330428], [57, 5.623405744734245e-15], [58, 3.158798679124834e-15], [59, 1.6498114223732287e-15]];
  for (const [i, want] of ref) assert.ok(Math.abs(s[i] - want) <= 1e-13 * want, `σ${i} = ${s[i]} vs ${want}`);
});

test('dqds matches the closed form of the all-ones bidiagonal and the QL route on random reductions', () => {
  // B = bidiag(1, 1), n = 200: σ_k = 2·cos(kπ/(2n + 1)).
  const n = 200;
  const s = bidiagonalSingularValuesDqds(new Float64Array(n).fill(1), new Float64Array(n - 1).fill(1))!;
  for (let k = 1; k <= n; k++) {
    const want = 2 * Math.cos((k * Math.PI) / (2 * n + 1));
    assert.ok(Math.abs(s[k - 1] - want) <= 64 * 2.2e-16 * want, `σ${k} = ${s[k - 1]} vs ${want}`);
  }
  for (const m of [97, 256]) {
    const { d, e } = bidiagonalizeBlocked(gaussian(m * m, m), m, m);
    const fast = bidiagonalSingularValuesDqds(d, e)!;
    const off = new Float64Array(2 * m - 1);
    for (let i = 0; i < m; i++) {
      off[2 * i] = d[i];
      if (i < m - 1) off[2 * i + 1] = e[i];
    }
    const ql = tridiagonalEigenvalues(new Float64Array(2 * m), off);
    for (let i = 0; i < m; i++) assert.ok(Math.abs(fast[i] - ql[i]) <= 8 * m * 2.2e-16 * ql[0], `${m}: σ${i} ${fast[i]} vs QL ${ql[i]}`);
  }
});

test('dqds declines a zero diagonal inside a block (singular B), and the QL fallback handles it', () => {
  const d = Float64Array.of(3, 0, 2, 1);
  const e = Float64Array.of(1, 1, 0.5);
  assert.equal(bidiagonalSingularValuesDqds(d, e), null);
  const s = bidiagonalSingularValues(d, e);
  assert.ok(s[3] <= 1e-15 * s[0], `σ_min of a singular B is 0, got ${s[3]}`);
  // A split (zero e) with a 1×1 zero block is fine for dqds itself.
  const split = bidiagonalSingularValuesDqds(Float64Array.of(2, 0, 1), Float64Array.of(0, 0))!;
  assert.deepEqual(Array.from(split), [2, 1, 0]);
});
